//! `simcse convert` against what PyTorch itself loads (tests/fixtures/gen_checkpoints.py):
//! every converted tensor is compared byte for byte with torch.load's result (and with
//! PyTorch's own casts), aliases with safetensors' choice, names with SimCSE's script.

use safetensors::SafeTensors;
use sha2::{Digest, Sha256};
use simcse_convert::checkpoint::SourceFiles;
use simcse_convert::{convert, safetensors_out, source, ConvertError, ConvertOptions, DType, KeyMap};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn fixture(name: &str) -> PathBuf {
    common::fixture(&format!("checkpoints/{name}"))
}

fn expected_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("expected/{name}.json"))).unwrap()).unwrap()
}

/// A safetensors file as name -> (dtype, shape, bytes), plus its metadata.
struct Tensors {
    tensors: BTreeMap<String, (String, Vec<usize>, Vec<u8>)>,
    metadata: BTreeMap<String, String>,
}

fn read_safetensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    Tensors {
        tensors: st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, (format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec())))
            .collect(),
        metadata: meta.metadata().clone().unwrap_or_default().into_iter().collect(),
    }
}

fn run_convert(src: &Path, options: &ConvertOptions) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("model");
    convert(src, &dst, options, &mut |_, _| true).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    (dir, dst)
}

/// Every tensor PyTorch loaded is in our output with the same dtype, shape and bytes (aliased
/// names resolved through the metadata), and the aliases are those PyTorch's storages imply.
fn assert_matches_torch(output: &Path, expected: &Path, expected_aliases: &serde_json::Value, rename: impl Fn(&str) -> String) {
    let ours = read_safetensors(&output.join("model.safetensors"));
    let torch = read_safetensors(expected);
    assert_eq!(ours.metadata.get("format").map(String::as_str), Some("pt"));
    for (name, (dtype, shape, bytes)) in &torch.tensors {
        let name = rename(name);
        let stored = ours.metadata.get(&name).unwrap_or(&name);
        let (our_dtype, our_shape, our_bytes) =
            ours.tensors.get(stored).unwrap_or_else(|| panic!("`{name}` missing from the output"));
        assert_eq!((our_dtype, our_shape), (dtype, shape), "`{name}`");
        assert!(same_bits_or_both_nan(dtype, our_bytes, bytes), "`{name}`: bytes differ from PyTorch's");
    }
    let aliases: BTreeMap<String, String> = ours
        .metadata
        .iter()
        .filter(|(k, _)| *k != "format")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let expected: BTreeMap<String, String> = expected_aliases
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (rename(k), rename(v.as_str().unwrap())))
        .collect();
    assert_eq!(aliases, expected);
    assert_eq!(ours.tensors.len() + aliases.len(), torch.tensors.len(), "tensor count");
}

/// Byte equality, except that a NaN may be any NaN: PyTorch itself writes bf16 NaN as 0x7FC0
/// in its scalar conversion (c10::BFloat16, which we follow) and as 0xFFFF in its AVX one,
/// depending on where in the tensor the NaN sits.
fn same_bits_or_both_nan(dtype: &str, ours: &[u8], theirs: &[u8]) -> bool {
    if ours == theirs {
        return true;
    }
    let as_f32: fn(&[u8]) -> f32 = match dtype {
        "BF16" => |b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
        "F16" => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
        _ => return false,
    };
    ours.len() == theirs.len()
        && ours.chunks(2).zip(theirs.chunks(2)).all(|(a, b)| a == b || (as_f32(a).is_nan() && as_f32(b).is_nan()))
}

fn same(name: &str) -> String {
    name.to_string()
}

#[test]
fn zip_and_legacy_formats_load_as_pytorch_loads_them() {
    for name in ["dtypes_zip", "dtypes_legacy"] {
        let (_dir, out) = run_convert(&fixture(&format!("{name}.bin")), &ConvertOptions::default());
        let expected = expected_json(name);
        assert_matches_torch(&out, &fixture(&format!("expected/{name}.safetensors")), &expected["aliases"], same);
    }
}

#[test]
fn casts_round_as_pytorch_does() {
    for name in ["dtypes_zip", "dtypes_legacy"] {
        for (dtype, suffix) in [(DType::F32, "f32"), (DType::F16, "f16"), (DType::BF16, "bf16")] {
            let options = ConvertOptions { dtype: Some(dtype), ..Default::default() };
            let (_dir, out) = run_convert(&fixture(&format!("{name}.bin")), &options);
            let expected = fixture(&format!("expected/{name}.{suffix}.safetensors"));
            assert_matches_torch(&out, &expected, &expected_json(name)["aliases"], same);
        }
    }
}

#[test]
fn safetensors_input_is_recast() {
    // A safetensors file written by Python's safetensors, cast by us, against PyTorch's cast.
    let options = ConvertOptions { dtype: Some(DType::BF16), ..Default::default() };
    let (_dir, out) = run_convert(&fixture("expected/dtypes_zip.safetensors"), &options);
    assert_matches_torch(&out, &fixture("expected/dtypes_zip.bf16.safetensors"), &serde_json::json!({}), same);
}

#[test]
fn nested_training_checkpoint_is_flattened_and_non_tensors_skipped() {
    let src = fixture("nested.bin");
    let dir = tempfile::tempdir().unwrap();
    let report = convert(&src, &dir.path().join("m"), &ConvertOptions::default(), &mut |_, _| true).unwrap();
    let expected = expected_json("nested");
    let mut skipped = report.skipped.clone();
    skipped.sort();
    let mut want: Vec<String> = expected["skipped"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    want.sort();
    assert_eq!(skipped, want);
    assert_matches_torch(&dir.path().join("m"), &fixture("expected/nested.safetensors"), &expected["aliases"], same);

    // --strip-prefix takes the wrapper's name off.
    let options = ConvertOptions { keys: KeyMap { strip_prefixes: vec!["model.".into()], ..Default::default() }, ..Default::default() };
    let (_dir, out) = run_convert(&src, &options);
    let strip = |n: &str| n.strip_prefix("model.").unwrap_or(n).to_string();
    assert_matches_torch(&out, &fixture("expected/nested.safetensors"), &expected["aliases"], strip);
}

#[test]
fn sharded_checkpoint_reads_every_shard() {
    let (_dir, out) = run_convert(&fixture("sharded"), &ConvertOptions::default());
    assert_matches_torch(&out, &fixture("expected/sharded.safetensors"), &expected_json("sharded")["aliases"], same);
}

#[test]
fn simcse_to_hf_matches_simcse_script() {
    let options = ConvertOptions { keys: KeyMap { simcse_to_hf: true, ..Default::default() }, ..Default::default() };
    let (_dir, out) = run_convert(&fixture("bert_for_cl"), &options);
    // The expected tensors are what SimCSE's simcse_to_huggingface.py saved: same names, same bytes.
    assert_matches_torch(&out, &fixture("expected/bert_for_cl.safetensors"), &expected_json("bert_for_cl")["aliases"], same);
    let config = |p: PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    assert_eq!(config(out.join("config.json")), config(fixture("bert_for_cl.expected/config.json")));
    assert!(out.join("vocab.txt").is_file());
    let simcse: serde_json::Value = config(out.join("simcse.json"));
    assert_eq!(simcse["pooler"], "cls", "SimCSE's MLP became the pooler, so the pooler is `cls`");
}

#[test]
fn tensorflow_layer_norm_names_are_renamed() {
    let (_dir, out) = run_convert(&fixture("layernorm_gamma_beta.bin"), &ConvertOptions::default());
    let rename = |n: &str| n.replace(".gamma", ".weight").replace(".beta", ".bias");
    assert_matches_torch(&out, &fixture("expected/layernorm_gamma_beta.safetensors"), &serde_json::json!({}), rename);
}

/// all-MiniLM-L6-v2 as torch.save wrote it (rebuilt from the committed skeleton, checked by
/// the sha256 of PyTorch's file) converts back to the very bytes of the original safetensors.
#[test]
fn minilm_written_by_torch_save_converts_back_to_identical_tensors() {
    let model = common::asset("all-MiniLM-L6-v2/model.safetensors");
    let original = read_safetensors(&model);
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("minilm_zip_skeleton.json")).unwrap()).unwrap();
    let skeleton = std::fs::read(fixture("minilm_zip_skeleton.bin")).unwrap();
    let mut bin = Vec::with_capacity(layout["size"].as_u64().unwrap() as usize);
    let mut taken = 0;
    for record in layout["records"].as_array().unwrap() {
        let offset = record["offset"].as_u64().unwrap() as usize;
        let upto = taken + (offset - bin.len());
        bin.extend_from_slice(&skeleton[taken..upto]);
        taken = upto;
        bin.extend_from_slice(&original.tensors[record["tensor"].as_str().unwrap()].2);
    }
    bin.extend_from_slice(&skeleton[taken..]);
    let digest: String = Sha256::digest(&bin).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, layout["sha256"].as_str().unwrap(), "the rebuilt file is not the one torch.save wrote");

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("minilm");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("pytorch_model.bin"), &bin).unwrap();
    let options = ConvertOptions { verify: true, ..Default::default() };
    let report = convert(&src, &dir.path().join("out"), &options, &mut |_, _| true).unwrap();
    assert_eq!(report.format.to_string(), "PyTorch zip");
    let converted = read_safetensors(&dir.path().join("out/model.safetensors"));
    assert_eq!(converted.tensors, original.tensors);
}

#[test]
fn verify_catches_a_corrupted_output() {
    let src = fixture("dtypes_zip.bin");
    let checkpoint = source::read_file(&src).unwrap();
    let names: Vec<String> = checkpoint.tensors.iter().map(|t| t.name.clone()).collect();
    let plan = safetensors_out::plan(&checkpoint, &names, None).unwrap();
    let files = SourceFiles::open(&checkpoint).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    safetensors_out::write(&out, &plan, &checkpoint, &files, &mut |_, _| true).unwrap();
    safetensors_out::verify(&out, &plan, &checkpoint, &files).unwrap();
    let mut bytes = std::fs::read(&out).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&out, bytes).unwrap();
    let error = safetensors_out::verify(&out, &plan, &checkpoint, &files).unwrap_err();
    assert!(matches!(error, ConvertError::Verify { .. }), "{error}");
}

#[test]
fn interruption_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("model");
    let error = convert(&fixture("dtypes_zip.bin"), &dst, &ConvertOptions::default(), &mut |_, _| false).unwrap_err();
    assert!(matches!(error, ConvertError::Interrupted { .. }), "{error}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "partial output left behind");
}

// ---------------------------------------------------------------- the command line

fn simcse(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simcse")).args(args).output().unwrap()
}

/// Runs `simcse convert SRC DST`, expects failure, and checks that the message names the
/// file and says `what`, and that nothing is left at DST or beside it.
fn assert_refused(src: &Path, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("out");
    let output = simcse(&["convert".as_ref(), src.as_os_str(), dst.as_os_str()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{} was accepted", src.display());
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains(&src.display().to_string()), "message does not name the file: {stderr}");
    assert!(stderr.contains(what), "expected `{what}` in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "left behind after: {stderr}");
}

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bad_inputs_are_reported_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = std::fs::read(fixture("dtypes_zip.bin")).unwrap();
    let legacy = std::fs::read(fixture("dtypes_legacy.bin")).unwrap();

    assert_refused(&write_temp(&tmp, "notes.bin", b"these are not weights\n"), "not a checkpoint");
    assert_refused(&write_temp(&tmp, "empty.bin", b""), "the file is empty");
    assert_refused(&write_temp(&tmp, "truncated_zip.bin", &zip[..zip.len() / 2]), "truncated");
    assert_refused(&write_temp(&tmp, "truncated_legacy.bin", &legacy[..legacy.len() - 100]), "truncated");
    // Legacy pickles come first in the file: cut inside them.
    assert_refused(&write_temp(&tmp, "cut_pickle.bin", &legacy[..200]), "pickle");
    // A damaged opcode inside the state dict's pickle.
    let mut damaged = legacy.clone();
    let at = legacy.windows(4).position(|w| w == b"ctor").expect("a GLOBAL in the pickle") - 10;
    damaged[at..at + 4].copy_from_slice(b"\xfe\xfe\xfe\xfe");
    assert_refused(&write_temp(&tmp, "damaged_pickle.bin", &damaged), "pickle");
    assert_refused(&fixture("refused_global.bin"), "refusing to unpickle `argparse.Namespace`");
    assert_refused(&fixture("shape_too_big.bin"), "does not fit its storage");
    assert_refused(&tmp.path().join("does-not-exist.bin"), "No such file");
}

#[test]
fn a_pickle_that_runs_code_is_refused_without_running_it() {
    let marker = Path::new("/tmp/simcse-pickle-ran");
    let _ = std::fs::remove_file(marker);
    assert_refused(&fixture("os_system.bin"), "refusing to unpickle `posix.system`");
    assert!(!marker.exists(), "the pickle's code ran");
}

#[test]
fn destination_problems_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    // A destination under a file cannot be created (permissions do not stop root, this does).
    let file = write_temp(&tmp, "a-file", b"x");
    let output = simcse(&["convert".as_ref(), fixture("dtypes_zip.bin").as_os_str(), file.join("out").as_os_str()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("destination"), "{stderr}");

    // An existing destination needs --overwrite; a directory simcse did not write is never
    // replaced; a model directory it wrote is replaced whole.
    let dst = tmp.path().join("model");
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("stale.txt"), "old").unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> = vec!["convert".into(), fixture("dtypes_zip.bin").into(), dst.clone().into()];
        a.extend(extra.iter().map(Into::into));
        a
    };
    let output = Command::new(env!("CARGO_BIN_EXE_simcse")).args(args(&[])).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("--overwrite"));
    assert!(dst.join("stale.txt").exists(), "refused conversion touched the destination");
    let output = Command::new(env!("CARGO_BIN_EXE_simcse")).args(args(&["--overwrite"])).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a model directory simcse wrote"));
    assert!(dst.join("stale.txt").exists(), "--overwrite deleted a file simcse did not write");
    std::fs::remove_file(dst.join("stale.txt")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_simcse")).args(args(&[])).output().unwrap();
    assert!(output.status.success(), "an empty destination is taken: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::write(dst.join("model.onnx"), "a graph of the old weights").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_simcse")).args(args(&["--overwrite", "--verify"])).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!dst.join("model.onnx").exists() && dst.join("model.safetensors").is_file());
    for field in ["tensors", "parameters", "bytes", "MB/s", "alias", "verified"] {
        assert!(stdout.contains(field), "summary lacks `{field}`: {stdout}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging directories left: {leftovers:?}");
}
