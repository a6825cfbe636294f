//! The trainer against PyTorch: the libtorch encoders' forward against transformers (every
//! pooler), SimCSE's loss against a transcription of cl_forward, AdamW and its schedule against
//! torch.optim.AdamW, the half-precision linear against fp32 autograd; and whole runs: a short
//! CPU run improves STS-B dev, a resumed run ends where an uninterrupted one does, and the
//! trained model exports and verifies.

mod common;

use common::{fixture, load_f32, load_i64, senteval_dir, sentences};
use simcse_train::half_linear::{half_linear, Half};
use simcse_train::loss::{contrastive_loss, mlm_loss};
use simcse_train::model::{load_weights, Encoder, Compute};
use simcse_train::optim::{linear_schedule, AdamW};
use simcse_core::architecture::Architecture;
use simcse_core::{ModelDir, Pooler};
use std::path::Path;
use simcse_train::tch::{self, nn, Device, Kind, Tensor};

fn tensor_f32(values: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(values).view(shape)
}

fn max_abs_diff(a: &Tensor, b: &[f32]) -> f32 {
    let a = Vec::<f32>::try_from(a.to_kind(Kind::Float).flatten(0, -1)).unwrap();
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Our libtorch encoder loaded from `dir`, the pooled outputs for each pooler on `ids`/`mask`.
fn torch_forward(dir: &Path, ids: &[i64], mask: &[i64], types: &[i64], shape: [i64; 2], poolers: &[Pooler]) -> Vec<Tensor> {
    torch_forward_in(Compute::F32, dir, ids, mask, types, shape, poolers)
}

fn torch_forward_in(precision: Compute, dir: &Path, ids: &[i64], mask: &[i64], types: &[i64], shape: [i64; 2], poolers: &[Pooler]) -> Vec<Tensor> {
    let config = ModelDir::new(dir).config().unwrap();
    let arch = Architecture::from_config(&config, dir).unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let with_pooler = poolers.contains(&Pooler::Cls);
    let mut encoder = Encoder::new(&vs.root(), &arch, with_pooler);
    load_weights(&mut vs, &dir.join("model.safetensors"), arch.weight_prefixes()).unwrap();
    encoder.set_precision(precision);
    let (ids, mask, types) = (Tensor::from_slice(ids).view(shape), Tensor::from_slice(mask).view(shape), Tensor::from_slice(types).view(shape));
    tch::no_grad(|| {
        let states = encoder.forward(&ids, &mask, arch.uses_token_types().then_some(&types), false);
        poolers.iter().map(|&p| encoder.pool(p, &states, &mask)).collect()
    })
}

#[test]
fn forward_matches_transformers_for_every_pooler() {
    let bert_poolers = [Pooler::Cls, Pooler::ClsBeforePooler, Pooler::Avg, Pooler::AvgTop2, Pooler::AvgFirstLast];
    let models = [("bert", &bert_poolers[..]), ("roberta", &bert_poolers[..]), ("mpnet", &bert_poolers[..]), ("gpt2", &[Pooler::Avg, Pooler::Wavg][..])];
    for (model, poolers) in models {
        let dir = fixture(&format!("encoders/{model}"));
        let expected_path = dir.join("expected.safetensors");
        let expected = load_f32(&expected_path);
        let ids = load_i64(&expected_path, "input_ids");
        let mask = load_i64(&expected_path, "attention_mask");
        let types = if model == "bert" { load_i64(&expected_path, "token_type_ids") } else { vec![0; ids.len()] };
        let shape = [8, ids.len() as i64 / 8];
        for (pooler, ours) in poolers.iter().zip(torch_forward(&dir, &ids, &mask, &types, shape, poolers)) {
            let diff = max_abs_diff(&ours, &expected[&format!("pooled.{pooler}")].1);
            assert!(diff <= 1e-5, "{model} {pooler}: max diff {diff:e}");
        }
    }
    // Llama: avg and wavg on the plain batch, `last` on the one whose sentences end with
    // end-of-sequence.
    let dir = fixture("encoders/llama");
    let expected_path = dir.join("expected.safetensors");
    let expected = load_f32(&expected_path);
    for (pooler, batch) in [(Pooler::Avg, ""), (Pooler::Wavg, ""), (Pooler::Last, "last.")] {
        let ids = load_i64(&expected_path, &format!("{batch}input_ids"));
        let mask = load_i64(&expected_path, &format!("{batch}attention_mask"));
        let shape = [8, ids.len() as i64 / 8];
        let ours = torch_forward(&dir, &ids, &mask, &vec![0; ids.len()], shape, &[pooler]).remove(0);
        let diff = max_abs_diff(&ours, &expected[&format!("pooled.{pooler}")].1);
        assert!(diff <= 1e-5, "llama {pooler}: max diff {diff:e}");
    }
    // all-MiniLM-L6-v2, with its own tokenization from transformers.
    let expected_path = fixture("encoders/minilm_expected.safetensors");
    let expected = load_f32(&expected_path);
    let ids = load_i64(&expected_path, "input_ids");
    let mask = load_i64(&expected_path, "attention_mask");
    let shape = [8, ids.len() as i64 / 8];
    let poolers = [Pooler::Avg, Pooler::ClsBeforePooler];
    let outputs = torch_forward(&common::asset("all-MiniLM-L6-v2"), &ids, &mask, &vec![0; ids.len()], shape, &poolers);
    for (pooler, ours) in poolers.iter().zip(outputs) {
        let diff = max_abs_diff(&ours, &expected[&format!("pooled.{pooler}")].1);
        assert!(diff <= 1e-5, "MiniLM {pooler}: max diff {diff:e}");
    }
}

/// The half-precision forward (half linear, attention in half) stays close to transformers'
/// fp32 output, padding included: each pooled row's cosine with the reference.
#[test]
fn half_precision_forward_stays_close_to_transformers() {
    for (model, pooler) in [("bert", Pooler::ClsBeforePooler), ("bert", Pooler::Avg), ("mpnet", Pooler::Avg), ("gpt2", Pooler::Wavg), ("llama", Pooler::Wavg)] {
        let dir = fixture(&format!("encoders/{model}"));
        let expected_path = dir.join("expected.safetensors");
        let expected = load_f32(&expected_path);
        let ids = load_i64(&expected_path, "input_ids");
        let mask = load_i64(&expected_path, "attention_mask");
        assert!(mask.contains(&0), "the fixture should have padding");
        let types = if model == "bert" { load_i64(&expected_path, "token_type_ids") } else { vec![0; ids.len()] };
        let shape = [8, ids.len() as i64 / 8];
        let reference = Tensor::from_slice(&expected[&format!("pooled.{pooler}")].1).view([8, -1]);
        // Llama's gate multiplies two bf16 products, so its rounding (3 digits) counts twice.
        let bf16_min_cosine = if model == "llama" { 0.9998 } else { 0.9999 };
        for (half, min_cosine) in [(Half::F16, 0.99999), (Half::BF16, bf16_min_cosine)] {
            let ours = torch_forward_in(Compute::Half(half), &dir, &ids, &mask, &types, shape, &[pooler]).remove(0).to_kind(Kind::Float);
            let cosine = Tensor::cosine_similarity(&ours, &reference, 1, 1e-8).min().double_value(&[]);
            assert!(cosine >= min_cosine, "{model} {pooler} {half:?}: lowest cosine {cosine}");
        }
    }
}

#[test]
fn loss_matches_simcses_cl_forward() {
    let tensors = load_f32(&fixture("training/loss.safetensors"));
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("training/loss.json")).unwrap()).unwrap();
    let get = |name: &str| {
        let (shape, values) = &tensors[name];
        tensor_f32(values, &shape.iter().map(|&d| d as i64).collect::<Vec<_>>())
    };
    let (z1, z2, z3) = (get("z1"), get("z2"), get("z3"));
    let expected = |k: &str| reference["losses"][k].as_f64().unwrap();
    let check = |name: &str, loss: Tensor| {
        let ours = loss.double_value(&[]);
        assert!((ours - expected(name)).abs() < 1e-5, "{name}: ours {ours}, PyTorch {}", expected(name));
    };
    check("unsupervised", contrastive_loss(&z1, &z2, None, 0.05, 0.0).0);
    check("hard_negatives", contrastive_loss(&z1, &z2, Some(&z3), 0.05, 0.0).0);
    check("hard_negatives_weighted", contrastive_loss(&z1, &z2, Some(&z3), 0.05, 0.5).0);
    let labels = get("mlm_labels").to_kind(Kind::Int64);
    check("with_mlm", contrastive_loss(&z1, &z2, None, 0.05, 0.0).0 + mlm_loss(&get("mlm_scores"), &labels) * 0.1);
}

#[test]
fn adamw_and_schedule_match_torch_over_20_steps() {
    let tensors = load_f32(&fixture("training/adamw.safetensors"));
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("training/adamw.json")).unwrap()).unwrap();
    let (lr, steps, warmup) = (reference["lr"].as_f64().unwrap(), reference["steps"].as_i64().unwrap(), reference["warmup"].as_i64().unwrap());
    let get = |name: &str| {
        let (shape, values) = &tensors[name];
        tensor_f32(values, &shape.iter().map(|&d| d as i64).collect::<Vec<_>>())
    };
    let params: Vec<(String, Tensor)> = (0..2).map(|i| (i.to_string(), get(&format!("initial.{i}")).set_requires_grad(true))).collect();
    let mut optimizer = AdamW::new(params.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), reference["weight_decay"].as_f64().unwrap());
    for step in 0..steps {
        let rate = linear_schedule(lr, step, steps, warmup);
        let expected_rate = reference["lrs"][step as usize].as_f64().unwrap();
        assert!((rate - expected_rate).abs() < 1e-12, "step {step}: lr {rate} vs {expected_rate}");
        for (i, (_, p)) in params.iter().enumerate() {
            let mut grad = p.grad();
            let g = get(&format!("grad.{step}.{i}"));
            if grad.defined() {
                tch::no_grad(|| grad.copy_(&g));
            } else {
                // Create the gradient through autograd: d(sum(p * g))/dp = g.
                (p * &g).sum(Kind::Float).backward();
            }
        }
        optimizer.step(rate);
        for (i, (_, p)) in params.iter().enumerate() {
            let expected = &tensors[&format!("after.{step}.{i}")].1;
            let diff = max_abs_diff(p, expected);
            assert!(diff < 1e-6, "step {step} param {i}: max diff {diff:e}");
        }
    }
}

#[test]
fn half_linear_matches_fp32_autograd() {
    tch::manual_seed(0);
    let x = Tensor::randn([4, 7, 32], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([24, 32], (Kind::Float, Device::Cpu)) * 0.2;
    let b = Tensor::randn([24], (Kind::Float, Device::Cpu));
    let upstream = Tensor::randn([4, 7, 24], (Kind::Float, Device::Cpu));
    let run = |half: Option<Half>| {
        let (x, w, b) = (x.copy().set_requires_grad(true), w.copy().set_requires_grad(true), b.copy().set_requires_grad(true));
        let y = match half {
            None => x.matmul(&w.tr()) + &b,
            Some(h) => half_linear(&x, &w, Some(&b), h),
        };
        (y.to_kind(Kind::Float) * &upstream).sum(Kind::Float).backward();
        (y.to_kind(Kind::Float), x.grad(), w.grad(), b.grad())
    };
    let reference = run(None);
    let relative = |a: &Tensor, b: &Tensor| (a - b).norm().double_value(&[]) / b.norm().double_value(&[]);
    for (half, limit) in [(Half::F16, 5e-3), (Half::BF16, 2e-2)] {
        let ours = run(Some(half));
        assert_eq!(ours.2.kind(), Kind::Float, "weight gradients reach the f32 master weights in f32");
        for (name, a, b) in [("y", &ours.0, &reference.0), ("dx", &ours.1, &reference.1), ("dW", &ours.2, &reference.2), ("db", &ours.3, &reference.3)] {
            let error = relative(&a.to_kind(Kind::Float), b);
            assert!(error <= limit, "{half:?} {name}: relative error {error:e}");
        }
    }
    // Without a bias (Llama's projections).
    let run = |half: Option<Half>| {
        let (x, w) = (x.copy().set_requires_grad(true), w.copy().set_requires_grad(true));
        let y = match half {
            None => x.matmul(&w.tr()),
            Some(h) => half_linear(&x, &w, None, h),
        };
        (y.to_kind(Kind::Float) * &upstream).sum(Kind::Float).backward();
        (y.to_kind(Kind::Float), x.grad(), w.grad())
    };
    let reference = run(None);
    for (half, limit) in [(Half::F16, 5e-3), (Half::BF16, 2e-2)] {
        let ours = run(Some(half));
        for (name, a, b) in [("y", &ours.0, &reference.0), ("dx", &ours.1, &reference.1), ("dW", &ours.2, &reference.2)] {
            let error = relative(&a.to_kind(Kind::Float), b);
            assert!(error <= limit, "{half:?} without bias, {name}: relative error {error:e}");
        }
    }
}

fn simcse(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_simcse")).args(args).output().unwrap()
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// A few hundred sentences of the bundled corpus.
fn corpus(tmp: &Path, lines: usize) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::asset("corpus/en.txt")).unwrap();
    let path = tmp.join("train.txt");
    std::fs::write(&path, text.lines().take(lines).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_short_cpu_run_improves_stsb_dev_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("minilm");
    simcse_convert::convert(&common::asset("all-MiniLM-L6-v2"), &model, &Default::default(), &mut |_, _| true).unwrap();
    let train = corpus(tmp.path(), 320);
    let out = tmp.path().join("run");
    let senteval = senteval_dir();
    let output = simcse(&[
        os("train"), os("--model-name-or-path"), model.as_os_str(), os("--train-file"), train.as_os_str(),
        os("--output-dir"), out.as_os_str(), os("--pooler-type"), os("cls_before_pooler"),
        os("--per-device-train-batch-size"), os("16"), os("--max-steps"), os("20"), os("--eval-steps"), os("20"),
        os("--senteval-dir"), senteval.as_os_str(), os("--device"), os("cpu"), os("--quiet"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let metrics: Vec<serde_json::Value> =
        std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let dev: Vec<f64> = metrics.iter().filter_map(|m| m["eval_stsb_spearman"].as_f64()).collect();
    assert!(dev.len() >= 2, "{metrics:?}");
    assert!(dev.last().unwrap() > &dev[0], "STS-B dev went from {} to {}", dev[0], dev.last().unwrap());
    assert!(metrics.iter().any(|m| m["loss"].is_number() && m["learning_rate"].is_number() && m["it_per_s"].is_number()));
    // The output directory is the best model's directory, which export takes as it is, and verifies.
    let best = out.clone();
    let export = simcse(&[os("export"), best.as_os_str(), os("--verify")]);
    let text = String::from_utf8_lossy(&export.stdout);
    assert!(export.status.success(), "{text}{}", String::from_utf8_lossy(&export.stderr));
    assert_eq!(text.matches(" ok").count(), 2, "{text}");
}

/// Trains the tiny BERT fixture; `stop_after` pauses the run, which is then resumed.
fn tiny_run(tmp: &Path, name: &str, stop_after: Option<i64>) -> std::path::PathBuf {
    let train = tmp.join("sentences.csv");
    if !train.exists() {
        let rows: Vec<String> = sentences().iter().cycle().take(48).enumerate().map(|(i, s)| format!("\"{s}\",\"{s} {i}\"")).collect();
        std::fs::write(&train, format!("sent0,sent1\n{}\n", rows.join("\n"))).unwrap();
    }
    let out = tmp.join(name);
    let mut args = vec![
        os("train"), os("--model-name-or-path"), fixture("encoders/bert").into_os_string().leak(), os("--train-file"),
        train.as_os_str(), os("--output-dir"), out.as_os_str(), os("--pooler-type"), os("cls"),
        os("--per-device-train-batch-size"), os("8"), os("--num-train-epochs"), os("2"), os("--save-steps"), os("5"),
        os("--evaluation-strategy"), os("no"), os("--do-mlm"), os("--device"), os("cpu"), os("--quiet"),
    ];
    let limit;
    if let Some(steps) = stop_after {
        limit = steps.to_string();
        args.extend([os("--stop-after"), os(&limit)]);
        let output = simcse(&args);
        assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("--resume"));
        let output = simcse(&[os("train"), os("--model-name-or-path"), fixture("encoders/bert").as_os_str(), os("--train-file"),
            train.as_os_str(), os("--output-dir"), out.as_os_str(), os("--resume"), out.as_os_str(), os("--device"), os("cpu"), os("--quiet")]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    } else {
        let output = simcse(&args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    out
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = load_f32(&tiny_run(tmp.path(), "straight", None).join("model.safetensors"));
    // Paused mid-epoch (step 7 of 6 per epoch x 2), then resumed.
    let resumed = load_f32(&tiny_run(tmp.path(), "resumed", Some(7)).join("model.safetensors"));
    assert_eq!(straight.len(), resumed.len());
    let initial = load_f32(&fixture("encoders/bert/model.safetensors"));
    for (name, (_, a)) in &straight {
        let b = &resumed[name].1;
        let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 1e-6, "{name}: resumed differs by {diff:e}");
        if let Some((_, before)) = initial.get(name) {
            assert!(a.iter().zip(before).any(|(x, y)| x != y), "{name} did not train");
        }
    }
}

#[test]
fn bad_training_setups_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let bert = fixture("encoders/bert");
    let run = |train: &Path, extra: &[&str]| {
        let mut args = vec![os("train"), os("--train-file"), train.as_os_str(),
            os("--output-dir"), tmp.path().join("out").into_os_string().leak(), os("--quiet")];
        if !extra.contains(&"--model-name-or-path") {
            args.extend([os("--model-name-or-path"), bert.as_os_str()]);
        }
        if !extra.contains(&"--evaluation-strategy") {
            args.extend([os("--evaluation-strategy"), os("no")]);
        }
        args.extend(extra.iter().map(|s| os(s)));
        let output = simcse(&args);
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let csv = tmp.path().join("bad.csv");
    std::fs::write(&csv, "sent0,sent1\na,b\nc,\n").unwrap();
    let err = run(&csv, &[]);
    assert!(err.contains("bad.csv:3") && err.contains("column 2 is empty"), "{err}");
    std::fs::write(&csv, "a,b,c,d\n1,2,3,4\n").unwrap();
    assert!(run(&csv, &[]).contains("4 columns"));
    let json = tmp.path().join("data.json");
    std::fs::write(&json, "{}").unwrap();
    assert!(run(&json, &[]).contains("unknown training file type"));
    let txt = corpus(tmp.path(), 10);
    // The test process loads CUDA as the binary does; where a GPU exists, there is no error to see.
    simcse_train::device::load_cuda();
    if tch::Cuda::is_available() {
        eprintln!("skipped the no-CUDA error: this machine has a GPU");
    } else {
        let err = run(&txt, &["--device", "cuda"]);
        assert!(err.contains("--device cuda") && err.contains("no CUDA device"), "{err}");
    }
    assert!(run(&txt, &["--evaluation-strategy", "steps"]).contains("--senteval-dir"));
    let err = run(&txt, &["--pooler-type", "cls", "--model-name-or-path", fixture("encoders/gpt2").to_str().unwrap()]);
    assert!(err.contains("GPT-2"), "{err}");
}
