//! `simcse serve` over loopback HTTP: the embeddings against transformers' (the committed
//! fixtures) and `simcse encode`'s, every route's shape against TEI's and OpenAI's schemas,
//! each refusal with its status and body, overload, and a graceful stop with requests in flight.

mod common;

use common::{compare, fixture, load_f32, sentences};
use serde_json::{json, Value};
use simcse_core::Pooler;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FP32_MAX_DIFF: f32 = 1e-4;
const DIM: usize = 384;

struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `simcse serve` on a free port; returns once the port is open (it opens after the
    /// warm-up forward pass).
    fn start(model: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_simcse"))
            .arg("serve")
            .arg(model)
            .args(["--port", "0"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let deadline = Instant::now() + Duration::from_secs(120);
        let port = loop {
            let line = lines.next().unwrap_or_else(|| panic!("the server exited: {}", log.lock().unwrap())).unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split(|c| c == ' ').next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no `listening on` line in {}", log.lock().unwrap());
        };
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server { child, port, log }
    }

    fn post(&self, path: &str, body: &Value) -> Response {
        http(self.port, "POST", path, &[], body.to_string().as_bytes())
    }

    fn get(&self, path: &str) -> Response {
        http(self.port, "GET", path, &[], b"")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // A server that refuses early may close before the whole body is in: that is its answer.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(": ")).map(|(n, v)| (n.to_string(), v.to_string())).collect();
    Response { status, headers, body: body.to_string() }
}

fn floats(value: &Value) -> Vec<f32> {
    value.as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect()
}

/// The embeddings of an OpenAI response, one after another, as floats or base64 alike.
fn openai_embeddings(body: &Value) -> Vec<f32> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| match &d["embedding"] {
            Value::String(base64) => decode_base64(base64),
            floats => floats.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect(),
        })
        .collect()
}

fn normalized(values: &[f32], dim: usize) -> Vec<f32> {
    values
        .chunks(dim)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter().map(move |v| v / norm)
        })
        .collect()
}

fn minilm(tmp: &Path) -> PathBuf {
    common::minilm_model(tmp, Pooler::Avg)
}

/// The embeddings of /embed, /v1/embeddings (float and base64) and /similarity against
/// transformers' (tests/fixtures/encoders/minilm_expected.safetensors) and `simcse encode`'s.
#[test]
fn embeddings_over_http_match_transformers_and_encode() {
    let tmp = tempfile::tempdir().unwrap();
    let model = minilm(tmp.path());
    let server = Server::start(&model, &[]);
    let reference = load_f32(&fixture("encoders/minilm_expected.safetensors"))["pooled.avg"].1.clone();
    let texts = sentences();

    let raw = server.post("/embed", &json!({ "inputs": texts, "normalize": false }));
    assert_eq!(raw.status, 200, "{}", raw.body);
    let raw = floats(&raw.json());
    let (diff, _) = compare(&raw, &reference, DIM);
    assert!(diff <= FP32_MAX_DIFF, "unnormalized /embed vs transformers: max diff {diff:e}");

    let unit = floats(&server.post("/embed", &json!({ "inputs": texts })).json());
    let (diff, _) = compare(&unit, &normalized(&reference, DIM), DIM);
    assert!(diff <= FP32_MAX_DIFF, "normalized /embed vs transformers: max diff {diff:e}");

    // One sentence alone is embedded as it is in a batch.
    let one = floats(&server.post("/embed", &json!({ "inputs": texts[2], "normalize": false })).json());
    assert!(compare(&one, &reference[2 * DIM..3 * DIM], DIM).0 <= FP32_MAX_DIFF);

    // `simcse encode` of the same sentences.
    let npy = tmp.path().join("e.npy");
    let out = Command::new(env!("CARGO_BIN_EXE_simcse"))
        .args(["encode".as_ref(), model.as_os_str(), "--input".as_ref(), fixture("encoders/sentences.txt").as_os_str()])
        .args(["--output".as_ref(), npy.as_os_str(), "--quiet".as_ref()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&npy).unwrap();
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let encoded: Vec<f32> = bytes[10 + header..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert!(compare(&raw, &encoded, DIM).0 <= 1e-5, "/embed vs simcse encode");

    // OpenAI: normalized, float and base64 alike.
    let from_float = openai_embeddings(&server.post("/v1/embeddings", &json!({ "input": texts, "model": "any" })).json());
    assert!(compare(&from_float, &unit, DIM).0 <= 1e-6);
    let decoded = openai_embeddings(&server.post("/v1/embeddings", &json!({ "input": texts, "encoding_format": "base64" })).json());
    // A request's inputs enter the queue together, so the same request alone is batched the same way.
    assert_eq!(decoded, from_float, "base64 is the float32 bytes of the same embeddings");

    // Matryoshka: the first 32 values, normalized again.
    let short = floats(&server.post("/embed", &json!({ "inputs": texts, "dimensions": 32, "normalize": false })).json());
    let expected: Vec<f32> = reference.chunks(DIM).flat_map(|row| row[..32].to_vec()).collect();
    assert!(compare(&short, &expected, 32).0 <= FP32_MAX_DIFF);
    let short_unit = floats(&server.post("/embed", &json!({ "inputs": texts, "dimensions": 32 })).json());
    assert!(compare(&short_unit, &normalized(&expected, 32), 32).0 <= FP32_MAX_DIFF);

    // /similarity: cosines of the source with each sentence.
    let scores = server.post("/similarity", &json!({ "inputs": { "source_sentence": texts[0], "sentences": texts[1..] } })).json();
    let scores: Vec<f32> = scores.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let row = |i: usize| &reference[i * DIM..(i + 1) * DIM];
    for (i, score) in scores.iter().enumerate() {
        let expected = simcse_runtime::similarity::cosine(row(0), row(i + 1));
        assert!((score - expected).abs() <= 1e-5, "similarity {i}: {score} vs {expected}");
    }
}

fn decode_base64(text: &str) -> Vec<f32> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = Vec::new();
    let (mut buffer, mut count) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        buffer = buffer << 6 | alphabet.iter().position(|&a| a == c).unwrap() as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            bits.push((buffer >> count) as u8);
        }
    }
    bits.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// The shapes of TEI's /info, /tokenize, /health and /metrics and of OpenAI's response.
#[test]
fn routes_have_the_shapes_of_tei_and_openai() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&minilm(tmp.path()), &["--model-id", "minilm", "--max-client-batch-size", "16"]);
    let info = server.get("/info").json();
    assert_eq!(info["model_id"], "minilm");
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");
    assert_eq!(info["max_input_length"], 256, "all-MiniLM-L6-v2's max_seq_length");
    assert_eq!(info["max_client_batch_size"], 16);
    assert_eq!(info["max_batch_tokens"], 16384);
    assert_eq!(info["dimensions"], DIM);
    for key in ["model_dtype", "max_concurrent_requests", "auto_truncate", "tokenization_workers", "version", "backend"] {
        assert!(info.get(key).is_some(), "/info has no {key}: {info}");
    }

    // /tokenize: TEI's SimpleToken, ids as transformers tokenized them.
    let expected_ids = common::load_i64(&fixture("encoders/minilm_expected.safetensors"), "input_ids");
    let mask = common::load_i64(&fixture("encoders/minilm_expected.safetensors"), "attention_mask");
    let texts = sentences();
    let tokens = server.post("/tokenize", &json!({ "inputs": texts })).json();
    let seq = expected_ids.len() / texts.len();
    for (i, sentence) in tokens.as_array().unwrap().iter().enumerate() {
        let ids: Vec<i64> = sentence.as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
        let real = mask[i * seq..(i + 1) * seq].iter().filter(|&&m| m == 1).count();
        assert_eq!(ids, expected_ids[i * seq..i * seq + real], "sentence {i}");
    }
    let hello = &server.post("/tokenize", &json!({ "inputs": "Hello world!" })).json()[0];
    assert_eq!(hello[0], json!({ "id": 101, "text": "[CLS]", "special": true, "start": null, "stop": null }));
    assert_eq!(hello[1], json!({ "id": 7592, "text": "Hello", "special": false, "start": 0, "stop": 5 }), "text is the input's span");
    let bare = &server.post("/tokenize", &json!({ "inputs": "Hello", "add_special_tokens": false })).json()[0];
    assert_eq!(bare.as_array().unwrap().len(), 1);

    // OpenAI's embeddings object, usage counting every token.
    let openai = server.post("/v1/embeddings", &json!({ "input": texts[..3], "model": "minilm" }));
    assert_eq!(openai.status, 200);
    let body = openai.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "minilm");
    let tokens: i64 = (0..3).map(|i| mask[i * seq..(i + 1) * seq].iter().sum::<i64>()).sum();
    assert_eq!(body["usage"], json!({ "prompt_tokens": tokens, "total_tokens": tokens }));
    for (i, item) in body["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        assert_eq!(item["embedding"].as_array().unwrap().len(), DIM);
    }
    for header in ["x-compute-time", "x-queue-time", "x-inference-time", "x-tokenization-time"] {
        assert!(openai.header(header).is_some_and(|v| v.parse::<u64>().is_ok()), "{header}: {:?}", openai.headers);
    }

    let health = server.get("/health");
    assert_eq!(health.status, 200);
    let metrics = server.get("/metrics").body;
    for line in ["te_request_count{method=\"batch\"} 1", "te_request_success{method=\"batch\"} 1", "# TYPE te_request_duration histogram", "te_queue_size 0"] {
        assert!(metrics.contains(line), "/metrics has no `{line}`:\n{metrics}");
    }
    for name in ["te_request_queue_duration_count", "te_request_inference_duration_count", "te_request_tokenization_duration_count", "te_batch_next_size_count", "te_batch_next_tokens_count"] {
        assert!(metrics.lines().any(|l| l.starts_with(name) && !l.ends_with(" 0")), "/metrics: {name} counted nothing:\n{metrics}");
    }
}

/// Each refusal: its status, TEI's or OpenAI's envelope, and a message that says what is wrong.
#[test]
fn every_refusal_has_its_status_and_a_body_that_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--api-key", "sesame", "--max-client-batch-size", "4", "--max-input-length", "16", "--payload-limit", "4000"];
    let server = Server::start(&minilm(tmp.path()), &args);
    let auth = [("Authorization", "Bearer sesame")];
    let post = |path: &str, body: &str| http(server.port, "POST", path, &auth, body.as_bytes());
    let long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen";
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        ("/embed", json!({ "inputs": ["a", "b", "c", "d", "e"] }).to_string(), 422, "Validation", "batch size 5 > maximum allowed batch size 4"),
        ("/embed", json!({ "inputs": long }).to_string(), 422, "Validation", "must have less than 16 tokens. Given: "),
        ("/embed", json!({ "inputs": [] }).to_string(), 400, "Empty", "`inputs` cannot be empty"),
        ("/embed", "{\"inputs\": [\"a\"".to_string(), 400, "Validation", "not valid JSON"),
        ("/embed", json!({ "inputs": 7 }).to_string(), 422, "Validation", "found a number"),
        ("/embed", json!({ "input": "a" }).to_string(), 422, "Validation", "missing field `inputs`"),
        ("/embed", json!({ "inputs": "a", "dimensions": 0 }).to_string(), 422, "Validation", "`dimensions` 0 is out of range"),
        ("/embed", json!({ "inputs": "a", "dimensions": 385 }).to_string(), 422, "Validation", "1 to 384"),
        ("/embed", json!({ "inputs": [[1, 2, 99999999]] }).to_string(), 422, "Validation", "token id 99999999 is not in the vocabulary"),
        ("/embed", json!({ "inputs": "a", "prompt_name": "query" }).to_string(), 422, "Validation", "no prompts"),
        ("/embed", json!({ "inputs": "a".repeat(5000) }).to_string(), 413, "Validation", "larger than the server's limit of 4000 bytes"),
        ("/embed", String::new(), 400, "Validation", "no body"),
        ("/similarity", json!({ "inputs": { "source_sentence": "a", "sentences": [] } }).to_string(), 400, "Empty", "`sentences` cannot be empty"),
        ("/search", json!({ "queries": "a" }).to_string(), 404, "NotFound", "without --corpus"),
        ("/nowhere", "{}".to_string(), 404, "NotFound", "no route POST /nowhere"),
    ];
    for (path, body, status, error_type, message) in &cases {
        let response = post(path, body);
        assert_eq!(response.status, *status, "{path} {body}: {}", response.body);
        let error = response.json();
        assert_eq!(error["error_type"], *error_type, "{path} {body}: {error}");
        assert!(error["error"].as_str().unwrap().contains(message), "{path} {body}: {error}");
    }
    // Truncation instead of the refusal, when asked for; from the left keeps the end.
    let right = post("/embed", &json!({ "inputs": long, "truncate": true }).to_string());
    let left = post("/embed", &json!({ "inputs": long, "truncate": true, "truncation_direction": "Left" }).to_string());
    assert_eq!((right.status, left.status), (200, 200), "{} {}", right.body, left.body);
    assert_ne!(right.body, left.body, "the two ends embed differently");

    // OpenAI's envelope on its route.
    let response = post("/v1/embeddings", &json!({ "input": ["a", "b", "c", "d", "e"] }).to_string());
    assert_eq!(response.status, 422);
    let error = &response.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "input");
    assert!(error["message"].as_str().unwrap().contains("maximum allowed batch size 4"), "{error}");
    let response = post("/v1/embeddings", &json!({ "input": "a", "encoding_format": "int8" }).to_string());
    assert_eq!((response.status, &response.json()["error"]["param"]), (422, &json!("encoding_format")));

    // The API key: wanted everywhere but /health and /metrics.
    let anonymous = server.post("/embed", &json!({ "inputs": "a" }));
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(anonymous.json()["error"].as_str().unwrap().contains("Bearer"));
    let wrong = http(server.port, "POST", "/v1/embeddings", &[("Authorization", "Bearer nope")], b"{\"input\": \"a\"}");
    assert_eq!((wrong.status, &wrong.json()["error"]["type"]), (401, &json!("authentication_error")));
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/metrics").status, 200);
    assert_eq!(server.get("/info").status, 401);
    let metrics = server.get("/metrics").body;
    assert!(metrics.contains("te_request_failure{err=\"validation\"}"), "{metrics}");
    assert!(metrics.contains("te_request_failure{err=\"unauthorized\"} 2"), "{metrics}");
}

/// Far more inputs than --max-concurrent-requests: every answer is 200 or 429 (with
/// Retry-After), never a 5xx or a dropped connection. Bounded: 12 clients x 6 requests.
#[test]
fn overload_gets_429_and_nothing_worse() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&minilm(tmp.path()), &["--max-concurrent-requests", "16", "--max-client-batch-size", "8"]);
    let port = server.port;
    let body = json!({ "inputs": vec![sentences()[0].repeat(6); 8] }).to_string();
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || (0..6).map(|_| http(port, "POST", "/embed", &[], body.as_bytes())).collect::<Vec<_>>())
        })
        .collect();
    let responses: Vec<Response> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let (ok, overloaded): (Vec<&Response>, Vec<&Response>) = responses.iter().partition(|r| r.status == 200);
    assert!(overloaded.iter().all(|r| r.status == 429), "statuses: {:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(!ok.is_empty() && !overloaded.is_empty(), "{} ok, {} overloaded", ok.len(), overloaded.len());
    for response in &overloaded {
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(response.json(), json!({ "error": "Model is overloaded", "error_type": "Overloaded" }));
    }
    for response in &ok {
        assert_eq!(response.json().as_array().unwrap().len(), 8);
    }
    let metrics = server.get("/metrics").body;
    assert!(metrics.contains(&format!("te_request_failure{{err=\"overloaded\"}} {}", overloaded.len())), "{metrics}");
}

/// SIGTERM with requests in flight: each of them is answered whole, then the server exits 0.
#[test]
fn sigterm_finishes_the_requests_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&minilm(tmp.path()), &[]);
    let port = server.port;
    // About 2 s of work on 2 cores: 8 requests of 32 inputs of 150-odd tokens.
    let long = sentences().join(" ").repeat(2);
    let body = json!({ "inputs": vec![long; 32], "truncate": true }).to_string();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let response = http(port, "POST", "/embed", &[], body.as_bytes());
                (response, Instant::now())
            })
        })
        .collect();
    // Every request is in a handler (counted) before the signal.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.get("/metrics").body.contains("te_request_count{method=\"batch\"} 8") {
        assert!(Instant::now() < deadline, "the requests never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let signalled = Instant::now();
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let answered: Vec<(Response, Instant)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    for (response, _) in &answered {
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.json().as_array().unwrap().len(), 32);
    }
    assert!(answered.iter().any(|(_, at)| *at > signalled), "every request was done before the signal: this proved nothing");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", server.log.lock().unwrap());
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("stopped: 8 requests answered"), "{log}");
}
