//! The unpickler against Python's own `pickle`: the same data pickled at protocols 0 to 5
//! (tests/fixtures/gen_checkpoints.py) must read back as the JSON Python wrote beside it.

use simcse_convert::pickle::{load, Handler, PickleErrorKind, Value};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/checkpoints/pickles")
}

/// Plain data only: any global is refused.
struct NoGlobals;

impl Handler for NoGlobals {
    fn find_class(&mut self, module: &str, name: &str) -> Result<Value, PickleErrorKind> {
        Err(PickleErrorKind::RefusedGlobal { module: module.into(), name: name.into() })
    }
    fn call(&mut self, callable: &str, _: Vec<Value>) -> Result<Value, PickleErrorKind> {
        Err(PickleErrorKind::Unsupported(callable.into()))
    }
    fn persistent_load(&mut self, _: Value) -> Result<Value, PickleErrorKind> {
        Err(PickleErrorKind::Unsupported("persistent id".into()))
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => J::from(*f),
        Value::Str(s) => J::from(s.as_ref()),
        Value::Tuple(items) => J::Array(items.iter().map(to_json).collect()),
        Value::List(items) => J::Array(items.borrow().iter().map(to_json).collect()),
        Value::Dict(items) => J::Object(
            items.borrow().iter().map(|(k, v)| (k.as_str().expect("string keys").to_string(), to_json(v))).collect(),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_protocol_reads_back_what_python_pickled() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap();
    for protocol in 0..=5 {
        let bytes = std::fs::read(fixtures().join(format!("protocol_{protocol}.pkl"))).unwrap();
        let (value, used) = load(&bytes[..], bytes.len() as u64, &mut NoGlobals)
            .unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        assert_eq!(used, bytes.len() as u64, "protocol {protocol} did not end at STOP");
        assert_eq!(to_json(&value), expected, "protocol {protocol}");
    }
}

#[test]
fn memo_references_share_one_object() {
    let bytes = std::fs::read(fixtures().join("protocol_2.pkl")).unwrap();
    let (value, _) = load(&bytes[..], bytes.len() as u64, &mut NoGlobals).unwrap();
    let Value::Dict(items) = value else { panic!("not a dict") };
    let shared = items.borrow().iter().find(|(k, _)| k.as_str() == Some("shared")).unwrap().1.clone();
    let pair = shared.as_seq().unwrap();
    match (&pair[0], &pair[1]) {
        (Value::List(a), Value::List(b)) => assert!(std::rc::Rc::ptr_eq(a, b)),
        other => panic!("expected two lists, got {other:?}"),
    }
}

#[test]
fn globals_are_refused_before_anything_runs() {
    // pickle.dumps(os.system) at protocol 2: GLOBAL 'posix system'.
    let bytes = b"\x80\x02cposix\nsystem\nq\x00.";
    let error = load(&bytes[..], bytes.len() as u64, &mut NoGlobals).unwrap_err();
    assert_eq!(error.kind, PickleErrorKind::RefusedGlobal { module: "posix".into(), name: "system".into() });
    assert_eq!(error.offset, 2);
}

#[test]
fn corrupt_streams_are_errors_not_panics() {
    let good = std::fs::read(fixtures().join("protocol_4.pkl")).unwrap();
    // Every truncation of a valid pickle must fail cleanly.
    for len in 0..good.len() {
        let result = load(&good[..len], len as u64, &mut NoGlobals);
        assert!(result.is_err(), "a pickle cut at {len} bytes was accepted");
    }
    // A length field far past the data must not allocate it.
    let huge = b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f";
    let error = load(&huge[..], huge.len() as u64, &mut NoGlobals).unwrap_err();
    assert!(matches!(error.kind, PickleErrorKind::Corrupt(_)), "{error}");
    // Unknown opcodes and stack underflow.
    for bytes in [&b"\x80\x02\xff."[..], &b"\x80\x02."[..], &b"\x80\x02s."[..], &b"\x80\x02h\x05."[..]] {
        assert!(load(bytes, bytes.len() as u64, &mut NoGlobals).is_err(), "{bytes:?}");
    }
}
