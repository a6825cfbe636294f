//! Regression tests for the ways a careless user lost files, got wrong results or saw a panic:
//! the training output directory (SimCSE's layout), encoders exported on the fly, files we did
//! not write, search over duplicate and blank lines and stale indexes, options checked before
//! work starts, signals and failures inside a step, and closed pipes. Each asserts the message
//! the user sees and that nothing was lost.

mod common;

use common::{fixture, load_f32, sentences};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn simcse<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simcse")).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The command failed with a message containing every one of `needles`, and no panic.
fn fails_with(output: &Output, needles: &[&str]) -> String {
    let err = stderr(output);
    assert!(!output.status.success(), "expected a failure, got success: {}{err}", stdout(output));
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
    err
}

fn succeeds(output: &Output) -> String {
    assert!(output.status.success(), "{}{}", stdout(output), stderr(output));
    stderr(output)
}

/// Every entry of a directory, recursively, with its bytes: what "nothing lost" compares.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.push((path.clone(), Vec::new()));
            all.extend(snapshot(&path));
        } else {
            all.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    all.sort();
    all
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// 100 sentences of the bundled corpus.
fn train_file(tmp: &Path) -> PathBuf {
    let path = tmp.join("train.txt");
    if !path.exists() {
        let text = std::fs::read_to_string(common::asset("corpus/en.txt")).unwrap();
        std::fs::write(&path, text.lines().take(100).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    }
    path
}

/// `simcse train` on the tiny BERT fixture, 8 examples a batch, a checkpoint every 5 steps;
/// options in `extra` replace these.
fn train_args(tmp: &Path, out: &Path, steps: u32, extra: &[&str]) -> Vec<String> {
    let steps = steps.to_string();
    let (model, data) = (fixture("encoders/bert"), train_file(tmp));
    let defaults = [
        ("--model-name-or-path", model.to_str().unwrap()),
        ("--train-file", data.to_str().unwrap()),
        ("--output-dir", out.to_str().unwrap()),
        ("--per-device-train-batch-size", "8"),
        ("--save-steps", "5"),
        ("--evaluation-strategy", "no"),
        ("--device", "cpu"),
        ("--max-steps", steps.as_str()),
    ];
    let mut args = vec!["train".to_string(), "--quiet".to_string()];
    for (flag, value) in defaults {
        if !extra.iter().any(|e| e == &flag || e.starts_with(&format!("{flag}="))) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A copy of the tiny BERT fixture's model directory without its (reference) model.onnx.
fn bert_dir(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(fixture("encoders/bert")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "model.onnx" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    dir
}

fn no_temporaries(dir: &Path) {
    let hidden: Vec<String> = names(dir).into_iter().filter(|n| n.contains(".partial") || n.contains(".old-")).collect();
    assert!(hidden.is_empty(), "temporaries left in {}: {hidden:?}", dir.display());
}

// ------------------------------------------------------------------ 1. SimCSE's output directory

#[test]
fn the_output_directory_is_the_model_directory_with_checkpoints_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    succeeds(&simcse(&train_args(tmp.path(), &out, 12, &["--save-total-limit", "2"])));
    let entries = names(&out);
    for name in ["config.json", "model.safetensors", "pytorch_model.bin", "simcse.json", "vocab.txt", "metrics.jsonl", "training_run.json"] {
        assert!(entries.contains(&name.to_string()), "{name} missing from {entries:?}");
    }
    // --save-total-limit 2: checkpoints 5, 10 and 12 were written; the two newest are kept.
    let checkpoints: Vec<&String> = entries.iter().filter(|n| n.starts_with("checkpoint-")).collect();
    assert_eq!(checkpoints, ["checkpoint-10", "checkpoint-12"]);
    for file in ["model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json"] {
        assert!(out.join("checkpoint-12").join(file).is_file(), "checkpoint-12/{file}");
    }
    no_temporaries(&out);

    // The weights torch.save's format carries, as libtorch's own reader reads them, are the
    // safetensors' bit for bit: SimCSE's simcse_to_huggingface.py reads this file.
    let torch = simcse_train::pickle_load::load_state_dict(&std::fs::read(out.join("pytorch_model.bin")).unwrap()).unwrap();
    let safetensors = load_f32(&out.join("model.safetensors"));
    assert_eq!(torch.len(), safetensors.len());
    for (name, tensor) in torch {
        let (shape, values) = &safetensors[&name];
        assert_eq!(tensor.size().iter().map(|&d| d as usize).collect::<Vec<_>>(), *shape, "{name}");
        let ours = Vec::<f32>::try_from(tensor.flatten(0, -1)).unwrap();
        assert!(ours == *values, "{name} differs between pytorch_model.bin and model.safetensors");
    }
    // The last checkpoint holds the model the directory holds (no evaluation: the last one).
    assert_eq!(load_f32(&out.join("checkpoint-12/model.safetensors")), safetensors);

    // Every command takes the directory as it is.
    let exported = simcse(&["export", out.to_str().unwrap()]);
    succeeds(&exported);
    assert!(stdout(&exported).contains(&format!("-> {}", out.join("model.onnx").display())));
}

#[test]
fn a_directory_that_is_not_a_model_directory_says_what_it_is_and_where_the_model_is() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let paused = simcse(&train_args(tmp.path(), &out, 12, &["--stop-after", "7"]));
    assert_eq!(paused.status.code(), Some(75), "{}", stderr(&paused));
    let err = fails_with(&simcse(&["export", out.to_str().unwrap()]), &["training run", "no model yet"]);
    assert!(err.contains(&out.join("checkpoint-7").display().to_string()), "{err}");
    // A checkpoint is a model directory.
    succeeds(&simcse(&["export", out.join("checkpoint-7").to_str().unwrap(), "-o", tmp.path().join("c7.onnx").to_str().unwrap()]));
    let models = tmp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let inner = bert_dir(&models, "bert");
    fails_with(&simcse(&["eval", models.to_str().unwrap()]), &["holds no model itself", inner.to_str().unwrap()]);
    fails_with(&simcse(&["export", fixture("checkpoints/sharded").to_str().unwrap()]), &["no config.json"]);
}

// ------------------------------------------------------------------ 2. exported on the fly

#[test]
fn encode_exports_a_model_directory_without_model_onnx_and_again_when_its_weights_change() {
    let tmp = tempfile::tempdir().unwrap();
    let model = bert_dir(tmp.path(), "bert");
    let input = fixture("encoders/sentences.txt");
    let encode = |dir: &Path, output: &str| {
        let output = tmp.path().join(output);
        let result = simcse(&[
            "encode", dir.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap(),
            "--max-length", "16", "--quiet",
        ]);
        (succeeds(&result), simcse_runtime::output::read_npy(&output).unwrap())
    };
    let (note, first) = encode(&model, "a.npy");
    assert!(note.contains("model.onnx did not exist: exported it"), "{note}");
    // What transformers computes for these sentences (the fixture generator's pooled [CLS]).
    let reference = &load_f32(&fixture("encoders/bert/expected.safetensors"))["pooled.cls"].1;
    assert!(common::compare(&first.values, reference, 32).0 <= 1e-4);
    let (note, _) = encode(&model, "b.npy");
    assert!(!note.contains("exported"), "the graph is reused while the weights are the same: {note}");

    // Train the same architecture and put its weights in place: the graph is stale.
    let out = tmp.path().join("run");
    succeeds(&simcse(&train_args(tmp.path(), &out, 5, &[])));
    std::fs::copy(out.join("model.safetensors"), model.join("model.safetensors")).unwrap();
    let (note, stale_checked) = encode(&model, "c.npy");
    assert!(note.contains("was exported from other weights"), "{note}");
    let (_, trained) = encode(&out, "d.npy");
    assert_eq!(stale_checked, trained, "the re-exported graph encodes as the trained model does");
    assert_ne!(stale_checked, first, "training changed the embeddings");
}

// ------------------------------------------------------------------ 3. never delete what we did not write

#[test]
fn train_refuses_a_directory_it_did_not_write_and_replaces_only_its_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "my notes").unwrap();
    let before = snapshot(&out);
    fails_with(&simcse(&train_args(tmp.path(), &out, 5, &[])), &["is not empty (notes.txt)", "--overwrite-output-dir"]);
    assert_eq!(snapshot(&out), before, "nothing of the user's changed");

    // With --overwrite-output-dir the run writes beside the user's file...
    succeeds(&simcse(&train_args(tmp.path(), &out, 5, &["--overwrite-output-dir"])));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "my notes");
    // ... a second run is refused, not silently replacing the first ...
    let first_run = snapshot(&out);
    fails_with(&simcse(&train_args(tmp.path(), &out, 5, &[])), &["holds an earlier training run", "--resume"]);
    assert_eq!(snapshot(&out), first_run);
    // ... and replacing it removes what that run wrote, nothing else.
    std::fs::create_dir(out.join("data")).unwrap();
    std::fs::write(out.join("data/keep.txt"), "keep").unwrap();
    succeeds(&simcse(&train_args(tmp.path(), &out, 10, &["--overwrite-output-dir"])));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "my notes");
    assert_eq!(std::fs::read_to_string(out.join("data/keep.txt")).unwrap(), "keep");
    assert!(out.join("checkpoint-10").is_dir());

    // The graph `simcse export` made of a run's model goes with the run it was made from
    // (`make demo` exports its run, and runs again)...
    succeeds(&simcse(&["export", out.to_str().unwrap()]));
    succeeds(&simcse(&train_args(tmp.path(), &out, 5, &["--overwrite-output-dir"])));
    assert!(!out.join("model.onnx").exists(), "the earlier run's graph is gone, not left stale");
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "my notes");
    // ... but a model.onnx that is not an export of ours is the user's, and collides.
    std::fs::write(out.join("model.onnx"), "my graph").unwrap();
    fails_with(&simcse(&train_args(tmp.path(), &out, 5, &["--overwrite-output-dir"])), &["already holds model.onnx", "never replaces"]);
    assert_eq!(std::fs::read_to_string(out.join("model.onnx")).unwrap(), "my graph");
    assert!(out.join("checkpoint-5").is_dir(), "the refused run left the earlier one whole");

    // A file the run would replace is refused, --overwrite-output-dir or not.
    let clash = tmp.path().join("clash");
    std::fs::create_dir(&clash).unwrap();
    std::fs::write(clash.join("vocab.txt"), "my vocabulary").unwrap();
    fails_with(&simcse(&train_args(tmp.path(), &clash, 5, &["--overwrite-output-dir"])), &["already holds vocab.txt", "never replaces"]);
    assert_eq!(std::fs::read_to_string(clash.join("vocab.txt")).unwrap(), "my vocabulary");
    assert_eq!(names(&clash), ["vocab.txt"]);
}

#[test]
fn convert_never_deletes_its_source_or_a_directory_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let outer = tmp.path().join("outer");
    std::fs::create_dir(&outer).unwrap();
    let src = bert_dir(&outer, "src");
    let before = snapshot(&outer);
    let convert = |src: &Path, dst: &Path| simcse(&["convert", src.to_str().unwrap(), dst.to_str().unwrap(), "--overwrite", "-q"]);
    fails_with(&convert(&src, &outer), &["holds the source", "would delete the source"]);
    assert_eq!(snapshot(&outer), before, "the source is intact");

    let documents = tmp.path().join("documents");
    std::fs::create_dir(&documents).unwrap();
    std::fs::write(documents.join("thesis.tex"), "years of work").unwrap();
    fails_with(&convert(&src, &documents), &["not a model directory simcse wrote"]);
    assert_eq!(std::fs::read_to_string(documents.join("thesis.tex")).unwrap(), "years of work");

    // A model directory of ours with a file of the user's in it is not replaced either.
    let model = tmp.path().join("model");
    succeeds(&convert(&src, &model));
    std::fs::write(model.join("README.md"), "my model card").unwrap();
    fails_with(&convert(&src, &model), &["README.md", "replaces only what simcse wrote"]);
    assert!(model.join("README.md").is_file());
    std::fs::remove_file(model.join("README.md")).unwrap();
    succeeds(&convert(&src, &model));
}

#[test]
fn writers_create_only_the_last_level_and_name_the_users_path() {
    let tmp = tempfile::tempdir().unwrap();
    let model = bert_dir(tmp.path(), "bert");
    let typo = tmp.path().join("typo");
    let input = fixture("encoders/sentences.txt");
    let m = model.to_str().unwrap();
    let deep = |tail: &str| typo.join("deeper").join(tail).to_str().unwrap().to_string();
    let attempts: Vec<Vec<String>> = vec![
        vec!["convert".into(), m.into(), deep("dst"), "-q".into()],
        vec!["export".into(), m.into(), "-o".into(), deep("m.onnx")],
        vec!["encode".into(), m.into(), "--input".into(), input.to_str().unwrap().into(), "--output".into(), deep("e.npy")],
        vec!["search".into(), m.into(), "--corpus".into(), input.to_str().unwrap().into(), "--index".into(), deep("index"), "--query".into(), "x".into()],
        train_args(tmp.path(), &typo.join("deeper/run"), 5, &[]),
    ];
    for args in attempts {
        fails_with(&simcse(&args), &["does not exist", "only the last level"]);
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // A write that fails at the end names the user's path, not a hidden temporary.
    let taken = tmp.path().join("taken.onnx");
    std::fs::create_dir(&taken).unwrap();
    let err = fails_with(&simcse(&["export", m, "-o", taken.to_str().unwrap()]), &[taken.to_str().unwrap()]);
    assert!(!err.contains(".partial"), "{err}");
    no_temporaries(tmp.path());
}

// ------------------------------------------------------------------ 4. search must be right

fn minilm(tmp: &Path) -> PathBuf {
    let model = tmp.join("minilm");
    succeeds(&simcse(&["convert", common::asset("all-MiniLM-L6-v2").to_str().unwrap(), model.to_str().unwrap(), "-q"]));
    model
}

#[test]
fn search_reports_each_duplicate_at_its_own_line_and_skips_blank_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let model = minilm(tmp.path());
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, "A man plays a guitar.\n\nA cat sleeps on the sofa.\nA man plays a guitar.\n   \nStocks fell sharply today.\n").unwrap();
    let hits = tmp.path().join("hits.jsonl");
    let output = simcse(&[
        "search", model.to_str().unwrap(), "--corpus", corpus.to_str().unwrap(), "--query", "someone playing a guitar",
        "--top-k", "18446744073709551615", "--threshold", "-1", "--output", hits.to_str().unwrap(),
    ]);
    succeeds(&output);
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&hits).unwrap().lines().next().unwrap()).unwrap();
    let found: Vec<(u64, String)> =
        line["hits"].as_array().unwrap().iter().map(|h| (h["index"].as_u64().unwrap(), h["sentence"].as_str().unwrap().to_string())).collect();
    // Four sentences (no blank line is a hit), the duplicates at lines 0 and 3, each once.
    assert_eq!(found.len(), 4, "{found:?}");
    let guitar: Vec<u64> = found.iter().filter(|(_, s)| s == "A man plays a guitar.").map(|(i, _)| *i).collect();
    assert_eq!(guitar, [0, 3]);
    assert!(found.iter().any(|h| *h == (2, "A cat sleeps on the sofa.".to_string())));
    assert!(found.iter().any(|h| *h == (5, "Stocks fell sharply today.".to_string())));
}

#[test]
fn a_saved_index_is_rebuilt_when_the_encoder_changes_or_it_is_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let model = minilm(tmp.path());
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, sentences().join("\n") + "\n").unwrap();
    let index = tmp.path().join("index");
    let search = |with_corpus: bool| {
        let mut args = vec!["search", model.to_str().unwrap(), "--index", index.to_str().unwrap(), "--query", "a dog", "--threshold", "-1"];
        if with_corpus {
            args.extend(["--corpus", corpus.to_str().unwrap()]);
        }
        simcse(&args)
    };
    assert!(succeeds(&search(true)).contains("index saved"));
    assert!(succeeds(&search(false)).contains("loaded"));
    let mean_pooled = stdout(&search(false));
    // Only model.onnx changes (same path, another pooler): the index must not be reused.
    succeeds(&simcse(&["export", model.to_str().unwrap(), "--pooler", "cls_before_pooler"]));
    fails_with(&search(false), &["built with another encoder", "--corpus"]);
    let rebuilt = search(true);
    assert!(succeeds(&rebuilt).contains("built with another encoder; re-encoding"));
    assert_ne!(stdout(&rebuilt), mean_pooled, "the scores are the new encoder's");
    // A damaged index: rebuilt with a note where the corpus is given, an error otherwise.
    std::fs::write(index.join("embeddings.safetensors"), b"damaged").unwrap();
    fails_with(&search(false), &["cannot be read", "--corpus"]);
    assert!(succeeds(&search(true)).contains("cannot be read"));
    assert_eq!(stdout(&search(false)), stdout(&rebuilt));
}

// ------------------------------------------------------------------ 5. options checked up front

#[test]
fn training_options_are_checked_against_the_model_and_the_data_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let pairs = tmp.path().join("pairs.csv");
    std::fs::write(&pairs, "sent0,sent1\na b,c d\ne f,g h\n").unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--learning-rate", "nan"], vec!["--learning-rate NaN must be a positive number"]),
        (vec!["--learning-rate", "inf"], vec!["--learning-rate inf"]),
        (vec!["--learning-rate=-1e-5"], vec!["--learning-rate -0.00001"]),
        (vec!["--per-device-train-batch-size", "1"], vec!["batch-size 1", "the loss is 0"]),
        (vec!["--max-seq-length", "100000"], vec!["--max-seq-length 100000", "position table", "64 tokens"]),
        (vec!["--hard-negative-weight", "1"], vec!["3-column csv", "has 1 column"]),
        (vec!["--pooler-type", "avg", "--mlp-only-train"], vec!["--mlp-only-train", "cls"]),
        (vec!["--temp", "0"], vec!["--temp 0"]),
        (vec!["--save-total-limit", "0"], vec!["--save-total-limit"]),
    ];
    for (extra, needles) in cases {
        fails_with(&simcse(&train_args(tmp.path(), &out, 5, &extra)), &needles);
        assert!(!out.exists(), "{extra:?} created the output directory");
    }
    let mut args = train_args(tmp.path(), &out, 5, &["--hard-negative-weight", "1"]);
    let at = args.iter().position(|a| a.ends_with("train.txt")).unwrap();
    args[at] = pairs.to_str().unwrap().into();
    fails_with(&simcse(&args), &["has 2 columns"]);
}

#[test]
fn a_resumed_run_refuses_options_that_disagree_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let paused = simcse(&train_args(tmp.path(), &out, 12, &["--stop-after", "5"]));
    assert_eq!(paused.status.code(), Some(75));
    let saved = snapshot(&out);
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--resume", out.to_str().unwrap(), "--device", "cpu", "--quiet"];
        args.extend(extra);
        simcse(&args)
    };
    let err = fails_with(&resume(&["--learning-rate", "1e-4", "--seed", "7", "--pooler-type", "cls"]), &["keeps its configuration"]);
    assert!(err.contains("--learning-rate is 0.0001 now, 0.00003") && err.contains("--seed is 7 now, 42"), "{err}");
    assert!(!err.contains("--pooler-type"), "options that agree are not reported: {err}");
    assert_eq!(snapshot(&out), saved);
    succeeds(&resume(&["--seed", "42"]));
}

#[test]
fn encoder_and_search_options_beyond_sense_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = bert_dir(tmp.path(), "bert");
    let input = fixture("encoders/sentences.txt");
    let encode = |extra: &[&str]| {
        let output = tmp.path().join("e.npy");
        let mut args = vec!["encode", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()];
        args.extend(extra);
        simcse(&args)
    };
    fails_with(&encode(&["--max-length", "100000"]), &["--max-length 100000", "position table", "64 tokens"]);
    fails_with(&encode(&["--threads", "100000"]), &["--threads 100000", "1 to 256"]);
    fails_with(&encode(&["--threads", "0"]), &["--threads 0"]);
    fails_with(&encode(&["--batch-size", "1000000000"]), &["--batch-size 1000000000", "16384"]);
    let search = |extra: &[&str]| {
        let mut args = vec!["search", model.to_str().unwrap(), "--corpus", input.to_str().unwrap(), "--query", "a dog"];
        args.extend(extra);
        simcse(&args)
    };
    fails_with(&search(&["--top-k", "0"]), &["--top-k 0"]);
    fails_with(&search(&["--threshold", "NaN"]), &["--threshold NaN", "[-1, 1]"]);
    fails_with(&search(&["--threshold", "2"]), &["--threshold 2"]);
    let all = search(&["--top-k", "18446744073709551615", "--threshold", "-1"]);
    succeeds(&all);
    assert_eq!(stdout(&all).lines().count(), 1 + sentences().len(), "every sentence, once: {}", stdout(&all));
    assert!(!tmp.path().join("e.npy").exists());
}

#[test]
fn sts_files_that_cannot_give_a_correlation_are_errors_not_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let model = bert_dir(tmp.path(), "bert");
    let zh = tmp.path().join("zh");
    std::fs::create_dir_all(zh.join("STS-B")).unwrap();
    let file = zh.join("STS-B/STS-B.test.data");
    let eval = || simcse(&["eval", model.to_str().unwrap(), "--task-set", "na", "--tasks", "STS-B-zh", "--zh-dir", zh.to_str().unwrap(), "-q"]);
    std::fs::write(&file, "a man\tthe man\t4.0\n").unwrap();
    fails_with(&eval(), &["STS-B.test.data", "only one scored pair"]);
    std::fs::write(&file, "a man\tthe man\t3\na dog\ta cat\t3\nsun\tmoon\t3\n").unwrap();
    fails_with(&eval(), &["STS-B.test.data", "gold score 3", "vary"]);
}

// ------------------------------------------------------------------ 6. signals and failures keep the run

/// Starts a long run and waits until it has logged a step (so that it is inside the loop).
fn start_long_run(tmp: &Path, out: &Path) -> std::process::Child {
    let args = train_args(tmp, out, 100_000, &["--save-steps", "100000", "--logging-steps", "5"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_simcse")).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let metrics = out.join("metrics.jsonl");
    let started = std::time::Instant::now();
    while std::fs::metadata(&metrics).map_or(true, |m| m.len() == 0) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first step");
        assert!(started.elapsed().as_secs() < 120, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

fn signal(child: &std::process::Child, signal: i32) {
    unsafe { libc::kill(child.id() as i32, signal) };
}

#[test]
fn sigterm_and_sigint_save_the_state_and_exit_with_the_signals_code() {
    let tmp = tempfile::tempdir().unwrap();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let out = tmp.path().join(format!("run-{sig}"));
        let child = start_long_run(tmp.path(), &out);
        signal(&child, sig);
        let output = child.wait_with_output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{err}");
        assert!(err.contains("saving state; press Ctrl-C again to abandon it"), "{err}");
        assert!(err.contains("interrupted at step") && err.contains("--resume"), "{err}");
        assert!(!err.to_lowercase().contains("error"), "an interrupt is not an error: {err}");
        let checkpoint = names(&out).into_iter().find(|n| n.starts_with("checkpoint-")).expect("a checkpoint");
        assert!(out.join(&checkpoint).join("trainer_state.json").is_file());
        no_temporaries(&out);
    }
}

#[test]
fn a_second_interrupt_abandons_without_leaving_a_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let child = start_long_run(tmp.path(), &out);
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGINT);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    no_temporaries(&out);
    // Whatever got saved is whole: every checkpoint has its state.
    for name in names(&out).into_iter().filter(|n| n.starts_with("checkpoint-")) {
        assert!(out.join(&name).join("trainer_state.json").is_file(), "{name} is incomplete");
    }
}

#[test]
fn a_libtorch_failure_inside_a_step_is_an_error_that_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let args = train_args(tmp.path(), &out, 12, &[]);
    // The test hook raises a real libtorch (C++) error inside step 7.
    let output = Command::new(env!("CARGO_BIN_EXE_simcse")).args(&args).env("SIMCSE_FAIL_AT_STEP", "7").output().unwrap();
    let err = fails_with(&output, &["step 7 failed on a batch of 8 examples", "is invalid for input of size", "checkpoint-5", "is intact"]);
    assert!(!err.contains("frame #"), "libtorch's stack is left out: {err}");
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("training_run.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "failed");
    // The kept checkpoint resumes to the end, as the uninterrupted run does.
    succeeds(&simcse(&["train", "--resume", out.to_str().unwrap(), "--device", "cpu", "--quiet"]));
    let straight = tmp.path().join("straight");
    succeeds(&simcse(&train_args(tmp.path(), &straight, 12, &[])));
    let (resumed, straight) = (load_f32(&out.join("model.safetensors")), load_f32(&straight.join("model.safetensors")));
    for (name, (_, a)) in &straight {
        let diff = a.iter().zip(&resumed[name].1).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 1e-6, "{name}: the resumed run differs by {diff:e}");
    }
}

#[test]
fn a_resume_recovers_a_checkpoint_swap_cut_by_a_crash_and_logs_no_step_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let paused = simcse(&train_args(tmp.path(), &out, 12, &["--stop-after", "10", "--logging-steps", "1"]));
    assert_eq!(paused.status.code(), Some(75));
    // A crash between the swap's two renames leaves the old copy aside and nothing in place.
    std::fs::rename(out.join("checkpoint-10"), out.join(".checkpoint-10.old-99999")).unwrap();
    let resumed = simcse(&["train", "--resume", out.to_str().unwrap(), "--device", "cpu", "--quiet"]);
    let err = succeeds(&resumed);
    assert!(err.contains("restored") && err.contains("from") && err.contains("(step 10)"), "{err}");
    let steps: Vec<i64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>(), "each step logged once");
    // An older checkpoint resumes too, and the steps after it are logged once again, not twice.
    succeeds(&simcse(&["train", "--resume", out.join("checkpoint-5").to_str().unwrap(), "--device", "cpu", "--quiet"]));
    let again: Vec<i64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_i64().unwrap())
        .collect();
    assert_eq!(again, steps);
}

// ------------------------------------------------------------------ 7. closed pipes

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let model = bert_dir(tmp.path(), "bert");
    let corpus = fixture("encoders/sentences.txt");
    let queries = tmp.path().join("queries.txt");
    std::fs::write(&queries, (0..2000).map(|i| format!("query number {i}\n")).collect::<String>()).unwrap();
    let args = ["search", model.to_str().unwrap(), "--corpus", corpus.to_str().unwrap(), "--queries", queries.to_str().unwrap(), "--threshold", "-1"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_simcse")).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));

    // Training stops as on an interrupt: the state is saved.
    let out = tmp.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_simcse"))
        .args(train_args(tmp.path(), &out, 100_000, &["--save-steps", "100000", "--logging-steps", "1"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(err.contains("stdout was closed") && !err.contains("panicked"), "{err}");
    assert!(names(&out).iter().any(|n| n.starts_with("checkpoint-")), "{:?}", names(&out));
}
