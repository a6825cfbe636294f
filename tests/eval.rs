//! `simcse eval` against the Python reference (tests/fixtures/gen_sts.py: transformers with
//! SimCSE's batcher and poolers, SentEval's sts.py protocol, scipy's correlations), subset by
//! subset, to 0.02 of a Spearman or Pearson point; the correlations against scipy on ties;
//! every reader's error path on broken files.

mod common;

use common::{fixture, minilm_model, senteval_dir, zh_dir};
use simcse_core::Pooler;
use simcse_runtime::sts::stats::{pearson, spearman};
use simcse_runtime::sts::{self, DataDirs, Mode, Pair, Subset, Task};
use simcse_runtime::{Embeddings, Encoder, EncoderOptions, RuntimeError};
use std::path::Path;

/// Points of Spearman or Pearson x 100.
const TOLERANCE: f64 = 0.02;

fn reference() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("sts/minilm_reference.json")).unwrap()).unwrap()
}

fn check(failures: &mut Vec<String>, what: String, ours: f64, theirs: &serde_json::Value) {
    let theirs = theirs.as_f64().unwrap_or_else(|| panic!("{what}: no reference"));
    if ((ours - theirs) * 100.0).abs() > TOLERANCE {
        failures.push(format!("{what}: ours {:.4}, reference {:.4}", ours * 100.0, theirs * 100.0));
    }
}

/// Our evaluation of the tasks, keyed as the reference keys them.
fn evaluate(model: &Path, specs: &[(&str, Mode, &str)]) -> Vec<(String, sts::TaskScore)> {
    let dirs = DataDirs { senteval: Some(senteval_dir()), zh: Some(zh_dir()), raw_stsb: None };
    let mut encoder = Encoder::open(model, &EncoderOptions::default()).unwrap();
    specs
        .iter()
        .map(|(name, mode, key)| {
            let task = sts::data::spec(name).unwrap().load(&dirs, *mode).unwrap();
            let score = sts::evaluate(&[task], &mut |s| encoder.encode(s)).unwrap().remove(0);
            (key.to_string(), score)
        })
        .collect()
}

#[test]
fn minilm_matches_the_python_reference_subset_by_subset() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = reference();
    let mut failures = Vec::new();
    let tasks: Vec<(&str, Mode, &str)> = vec![
        ("STS12", Mode::Test, "STS12"),
        ("STS13", Mode::Test, "STS13"),
        ("STS14", Mode::Test, "STS14"),
        ("STS15", Mode::Test, "STS15"),
        ("STS16", Mode::Test, "STS16"),
        ("STSBenchmark", Mode::Test, "STSBenchmark/test"),
        ("STSBenchmark", Mode::Dev, "STSBenchmark/dev"),
        ("STS-B-zh", Mode::Test, "STS-B-zh/test"),
        ("STS-B-zh", Mode::Dev, "STS-B-zh/valid"),
    ];
    for pooler in [Pooler::Avg, Pooler::ClsBeforePooler] {
        let model = minilm_model(tmp.path(), pooler);
        for (key, score) in evaluate(&model, &tasks) {
            let theirs = &reference["results"][pooler.name()][&key];
            for (metric, aggregate) in [("pearson", score.pearson), ("spearman", score.spearman)] {
                for (kind, value) in [("all", aggregate.all), ("mean", aggregate.mean), ("wmean", aggregate.wmean)] {
                    check(&mut failures, format!("{pooler} {key} {metric} {kind}"), value, &theirs[metric][kind]);
                }
            }
            for subset in &score.subsets {
                let theirs = &theirs["subsets"][&subset.name];
                assert_eq!(Some(subset.n as u64), theirs["n"].as_u64(), "{pooler} {key} {}: pair count", subset.name);
                check(&mut failures, format!("{pooler} {key} {} pearson", subset.name), subset.pearson, &theirs["pearson"]);
                check(&mut failures, format!("{pooler} {key} {} spearman", subset.name), subset.spearman, &theirs["spearman"]);
            }
        }
    }
    assert!(failures.is_empty(), "{} figures differ from the reference by more than {TOLERANCE}:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn correlations_match_scipy_on_tie_heavy_data() {
    let cases: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("sts/correlations.json")).unwrap()).unwrap();
    for case in cases.as_array().unwrap() {
        let values = |k: &str| -> Vec<f64> { case[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
        let (x, y) = (values("x"), values("y"));
        assert!((spearman(&x, &y) - case["spearman"].as_f64().unwrap()).abs() < 1e-12, "spearman of {} pairs", x.len());
        assert!((pearson(&x, &y) - case["pearson"].as_f64().unwrap()).abs() < 1e-12, "pearson of {} pairs", x.len());
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

fn load_error(dirs: &DataDirs, task: &str, mode: Mode) -> String {
    sts::data::spec(task).unwrap().load(dirs, mode).unwrap_err().to_string()
}

#[test]
fn broken_files_are_reported_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dirs = DataDirs { senteval: Some(root.join("senteval")), zh: Some(root.join("zh")), raw_stsb: Some(root.join("raw")) };

    // A missing task directory names the path and the files expected.
    let missing = load_error(&dirs, "STS12", Mode::Test);
    assert!(missing.contains("STS12-en-test") && missing.contains("STS.input.MSRpar.txt"), "{missing}");
    let sick = load_error(&dirs, "SICKRelatedness", Mode::Test);
    assert!(sick.contains("downstream/SICK") && sick.contains("SICK_test_annotated.txt"), "{sick}");

    // STS12 with a line of three fields, then with a bad score, then with mismatched lengths.
    let year = root.join("senteval/downstream/STS/STS12-en-test");
    for subset in ["MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"] {
        write(&year, &format!("STS.input.{subset}.txt"), "a b\tc d\ne f\tg h\ni j\tk l\n");
        write(&year, &format!("STS.gs.{subset}.txt"), "1.0\n\n2.0\n");
    }
    let ok = sts::data::spec("STS12").unwrap().load(&dirs, Mode::Test).unwrap();
    assert_eq!(ok.subsets[0].pairs.len(), 2, "a pair without gold is skipped, as in SentEval");
    write(&year, "STS.input.MSRvid.txt", "a b\tc d\ne f\tg\th\ni j\tk l\n");
    let err = load_error(&dirs, "STS12", Mode::Test);
    assert!(err.contains("STS.input.MSRvid.txt:2") && err.contains("3 fields"), "{err}");
    write(&year, "STS.input.MSRvid.txt", "a b\tc d\ne f\tg h\ni j\tk l\n");
    write(&year, "STS.gs.MSRpar.txt", "1.0\nfive\n2.0\n");
    let err = load_error(&dirs, "STS12", Mode::Test);
    assert!(err.contains("STS.gs.MSRpar.txt:2") && err.contains("`five`"), "{err}");
    write(&year, "STS.gs.MSRpar.txt", "1.0\n");
    let err = load_error(&dirs, "STS12", Mode::Test);
    assert!(err.contains("has 3 lines") && err.contains("has 1"), "{err}");
    // A subset left with one scored pair, or with one gold score throughout, gives no correlation.
    write(&year, "STS.gs.MSRpar.txt", "1.0\n\n\n");
    let err = load_error(&dirs, "STS12", Mode::Test);
    assert!(err.contains("STS.gs.MSRpar.txt") && err.contains("only one scored pair"), "{err}");
    write(&year, "STS.gs.MSRpar.txt", "2.0\n2.0\n2.0\n");
    let err = load_error(&dirs, "STS12", Mode::Test);
    assert!(err.contains("gold score 2") && err.contains("vary"), "{err}");
    write(&year, "STS.gs.MSRpar.txt", "1.0\n\n2.0\n");

    // STS Benchmark, SICK and the pair files.
    let stsb = root.join("senteval/downstream/STS/STSBenchmark");
    write(&stsb, "sts-test.csv", "g\tf\ty\t1\t2.5\ta b\tc d\ng\tf\ty\t2\t3.0\tonly six fields\n");
    let err = load_error(&dirs, "STSBenchmark", Mode::Test);
    assert!(err.contains("sts-test.csv:2") && err.contains("7 tab-separated fields"), "{err}");
    write(&root.join("senteval/downstream/SICK"), "SICK_test_annotated.txt", "pair_ID\tA\tB\tscore\n1\ta\tb\tx.y\n");
    let err = load_error(&dirs, "SICKRelatedness", Mode::Test);
    assert!(err.contains("SICK_test_annotated.txt:2") && err.contains("`x.y`"), "{err}");
    write(&root.join("zh/STS-B"), "STS-B.test.data", "甲\t乙\t3\n只有两列\t4\n");
    let err = load_error(&dirs, "STS-B-zh", Mode::Test);
    assert!(err.contains("STS-B.test.data:2") && err.contains("2 fields"), "{err}");
}

fn one_task(pairs: Vec<(&str, &str, f64)>) -> Task {
    let pairs = pairs.into_iter().map(|(a, b, score)| Pair { a: a.into(), b: b.into(), score }).collect();
    Task { name: "toy".into(), subsets: vec![Subset { name: "toy".into(), pairs }] }
}

#[test]
fn broken_embeddings_are_reported_not_scored() {
    let task = one_task(vec![("a", "b", 1.0), ("c", "d", 2.0), ("a", "d", 3.0)]);
    for (bad, problem) in [(f32::NAN, "not finite"), (0.0, "all zeros")] {
        let mut embed = |sentences: &[&str]| -> Result<Embeddings, RuntimeError> {
            let values = sentences.iter().flat_map(|s| if *s == "c" { [bad, bad] } else { [1.0, 0.5] }).collect();
            Ok(Embeddings { rows: sentences.len(), dim: 2, values })
        };
        let err = sts::evaluate(std::slice::from_ref(&task), &mut embed).unwrap_err().to_string();
        assert!(err.contains("\"c\"") && err.contains(problem), "{err}");
    }
}

#[test]
fn cli_prints_simcses_table_and_writes_every_subset() {
    let tmp = tempfile::tempdir().unwrap();
    let model = minilm_model(tmp.path(), Pooler::Avg);
    let results = tmp.path().join("results.json");
    let senteval = senteval_dir();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_simcse"))
        .args(["eval".as_ref(), model.as_os_str(), "--mode".as_ref(), "dev".as_ref(), "--senteval-dir".as_ref()])
        .arg(&senteval)
        .args(["--output".as_ref(), results.as_os_str(), "--quiet".as_ref()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = reference()["results"]["avg"]["STSBenchmark/dev"]["spearman"]["all"].as_f64().unwrap() * 100.0;
    assert!(stdout.starts_with("------ dev ------"), "{stdout}");
    assert!(stdout.contains("| STSBenchmark | SICKRelatedness |"), "{stdout}");
    assert!(stdout.contains(&format!("{expected:.2}")), "STS-B dev {expected:.2} not in {stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("SICKRelatedness skipped"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    assert_eq!(json["tasks"][0]["subsets"][0]["n"], 1500, "STS-B dev has 1500 pairs");

    // A task asked for by name must exist.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_simcse"))
        .args(["eval".as_ref(), model.as_os_str(), "--task-set".as_ref(), "na".as_ref(), "--tasks".as_ref()])
        .args(["SICKRelatedness".as_ref(), "--senteval-dir".as_ref(), senteval.as_os_str()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("SICK_test_annotated.txt"), "{stderr}");
}
