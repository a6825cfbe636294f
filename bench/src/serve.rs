//! `simcse serve` against infinity-emb (torch engine, CPU) on loopback, the same model directory,
//! in the same run: a bounded load generator (keep-alive HTTP/1.1, one connection per client)
//! posts OpenAI embedding requests of STS-B sentences. Closed loop at batch x concurrency
//! 1x1, 8x8 and 32x16 (sentences/s, p50/p99 latency); open loop at twice the sustainable rate
//! of 8x8 (answers by status, latency from each request's scheduled time); then a soak at 8x8
//! (resident memory at its start and end, peak). `simcse encode` of the same sentences is the
//! offline figure the largest setting is held to. The OpenAI and TEI Python clients are run
//! against simcse serve last.

use crate::process::{machine, simcse_binary, write_figures};
use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// The model directory both servers load (with its model.onnx)
    pub model_dir: PathBuf,
    /// Sentences to send, one a line (STS-B's)
    #[arg(long)]
    pub sentences: PathBuf,
    /// Seconds of each closed-loop setting and of the overload
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Seconds of the soak at 8x8
    #[arg(long, default_value_t = 300)]
    pub soak_seconds: u64,
    /// The infinity_emb executable (scripts/setup_bench_serve.sh installs it)
    #[arg(long, default_value = ".venv-serve/bin/infinity_emb")]
    pub infinity: PathBuf,
    /// The Python that runs the client checks (bench/python/serve_clients.py)
    #[arg(long, default_value = ".venv-serve/bin/python")]
    pub python: PathBuf,
    /// An argument for `simcse serve` (repeatable), e.g. `--serve-arg=--max-batch-tokens=4096`
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// The servers to measure
    #[arg(long, value_delimiter = ',', default_value = "simcse,infinity")]
    pub servers: Vec<String>,
    /// Where the figures go
    #[arg(long, default_value = "target/bench/serve.json")]
    pub output: PathBuf,
}

const SETTINGS: [(usize, usize); 3] = [(1, 1), (8, 8), (32, 16)];
const SIMCSE_PORT: u16 = 3310;
const INFINITY_PORT: u16 = 3320;

pub fn run(args: ServeBenchArgs) -> anyhow::Result<()> {
    let sentences: Vec<String> = std::fs::read_to_string(&args.sentences)
        .with_context(|| format!("reading {}", args.sentences.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    anyhow::ensure!(sentences.len() >= 64, "{}: want at least 64 sentences", args.sentences.display());
    anyhow::ensure!(args.infinity.is_file(), "{} not found: run scripts/setup_bench_serve.sh", args.infinity.display());
    let sentences = Arc::new(sentences);
    let offline = offline_rate(&args, &sentences)?;
    errln!("simcse encode (offline): {offline:.0} sentences/s");

    let mut figures = BTreeMap::new();
    let simcse = simcse_binary()?;
    for server in args.servers.iter().map(String::as_str) {
        let (mut child, port, path) = match server {
            "simcse" => {
                let mut command = Command::new(&simcse);
                command.arg("serve").arg(&args.model_dir).args(["--port", &SIMCSE_PORT.to_string()]).args(&args.serve_args);
                (start(command)?, SIMCSE_PORT, "/v1/embeddings")
            }
            "infinity" => {
                let mut command = Command::new(&args.infinity);
                command.args(["v2", "--model-id"]).arg(&args.model_dir);
                command.args(["--engine", "torch", "--device", "cpu", "--no-bettertransformer", "--port", &INFINITY_PORT.to_string()]);
                command.env("HF_HUB_OFFLINE", "1").env("INFINITY_ANONYMOUS_USAGE_STATS", "0").env("DO_NOT_TRACK", "1");
                (start(command)?, INFINITY_PORT, "/embeddings")
            }
            other => bail!("--servers: `{other}` is not simcse or infinity"),
        };
        let measured = measure_server(server, &mut child, port, path, &sentences, &args);
        let clients = if server == "simcse" && measured.is_ok() { Some(client_check(&args, port)) } else { None };
        stop(&mut child);
        let mut measured = measured?;
        if let Some(clients) = clients {
            measured["clients"] = clients;
        }
        figures.insert(server, measured);
    }
    let figures = json!({
        "machine": machine(),
        "date": date(),
        "model_dir": args.model_dir,
        "sentences": sentences.len(),
        "offline_encode_sentences_per_s": offline,
        "serve_args": args.serve_args,
        "servers": figures,
    });
    write_figures(&args.output, &figures)?;
    print_table(&figures);
    Ok(())
}

fn date() -> String {
    Command::new("date").arg("-u").arg("+%Y-%m-%d").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

/// `simcse encode` of the sentences, best of three, the way the largest setting is compared.
fn offline_rate(args: &ServeBenchArgs, sentences: &[String]) -> anyhow::Result<f64> {
    let scratch = tempfile::tempdir()?;
    let input = scratch.path().join("sentences.txt");
    std::fs::write(&input, sentences.join("\n"))?;
    let mut best = 0f64;
    for _ in 0..3 {
        let started = Instant::now();
        let status = Command::new(simcse_binary()?)
            .arg("encode")
            .arg(&args.model_dir)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(scratch.path().join("e.npy"))
            .arg("--quiet")
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "simcse encode failed");
        best = best.max(sentences.len() as f64 / started.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn start(mut command: Command) -> anyhow::Result<Child> {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command.spawn().with_context(|| format!("starting {command:?}"))
}

fn stop(child: &mut Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_healthy(port: u16, child: &mut Child) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(300) {
        if let Some(status) = child.try_wait()? {
            bail!("the server exited ({status}) before it was healthy");
        }
        if let Ok(mut connection) = Connection::open(port) {
            if connection.send("GET", "/health", b"").is_ok_and(|(status, _)| status == 200) {
                return Ok(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the server on port {port} was not healthy within 300 s")
}

fn measure_server(name: &str, child: &mut Child, port: u16, path: &str, sentences: &Arc<Vec<String>>, args: &ServeBenchArgs) -> anyhow::Result<Value> {
    let ready = wait_healthy(port, child)?;
    errln!("{name}: healthy after {:.1} s", ready.as_secs_f64());
    let seconds = Duration::from_secs(args.seconds);
    // A short warm-up at the middle setting, not measured.
    load(port, path, sentences, 8, 8, Duration::from_secs(3), None);
    let mut settings = Vec::new();
    let mut sustainable = 0.0;
    for (batch, concurrency) in SETTINGS {
        let result = load(port, path, sentences, batch, concurrency, seconds, None);
        errln!("{name}: batch {batch} x concurrency {concurrency}: {:.0} sentences/s, p50 {:.1} ms, p99 {:.1} ms", result.sentences_per_s, result.p50_ms, result.p99_ms);
        if (batch, concurrency) == (8, 8) {
            sustainable = result.sentences_per_s;
        }
        settings.push(json!({ "batch": batch, "concurrency": concurrency, "result": result.to_json() }));
    }
    // Open loop at twice the rate 8x8 sustained: requests of 8 arrive on schedule, whatever the
    // answers; up to 256 connections.
    let rate = 2.0 * sustainable / 8.0;
    let overload = load(port, path, sentences, 8, 256, seconds, Some(rate));
    errln!("{name}: overload at {:.0} requests/s: statuses {:?}, p99 {:.1} ms", rate, overload.statuses, overload.p99_ms);
    let rss_before = rss_kib(child.id(), "VmRSS:");
    let soak = load(port, path, sentences, 8, 8, Duration::from_secs(args.soak_seconds), None);
    let rss_after = rss_kib(child.id(), "VmRSS:");
    let peak = rss_kib(child.id(), "VmHWM:");
    errln!("{name}: soak {} s: RSS {:.0} -> {:.0} MiB (peak {:.0} MiB)", args.soak_seconds, rss_before / 1024.0, rss_after / 1024.0, peak / 1024.0);
    Ok(json!({
        "ready_s": ready.as_secs_f64(),
        "settings": settings,
        "overload": { "requests_per_s": rate, "result": overload.to_json() },
        "soak": { "seconds": args.soak_seconds, "result": soak.to_json(), "rss_start_mib": rss_before / 1024.0, "rss_end_mib": rss_after / 1024.0 },
        "peak_rss_mib": peak / 1024.0,
    }))
}

/// A value of /proc/PID/status in KiB, the process's and its children's summed (uvicorn may
/// run its app in a child).
fn rss_kib(pid: u32, key: &str) -> f64 {
    let mut total = 0.0;
    let mut pids = vec![pid];
    while let Some(pid) = pids.pop() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        total += status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()).unwrap_or(0.0);
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        pids.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }
    total
}

struct LoadResult {
    sentences_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    statuses: BTreeMap<String, usize>,
}

impl LoadResult {
    fn to_json(&self) -> Value {
        json!({ "sentences_per_s": self.sentences_per_s, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "statuses": self.statuses })
    }
}

/// `concurrency` clients posting `batch` sentences a request for `duration`: as fast as the
/// answers come (closed loop), or on the schedule of `rate` requests/s (open loop).
fn load(port: u16, path: &str, sentences: &Arc<Vec<String>>, batch: usize, concurrency: usize, duration: Duration, rate: Option<f64>) -> LoadResult {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let records = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (sentences, next, records, path) = (sentences.clone(), next.clone(), records.clone(), path.to_string());
            std::thread::spawn(move || {
                let mut connection = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let scheduled = match rate {
                        Some(rate) => started + Duration::from_secs_f64(i as f64 / rate),
                        None => Instant::now(),
                    };
                    if scheduled.duration_since(started) >= duration || started.elapsed() >= duration {
                        return;
                    }
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let inputs: Vec<&str> = (0..batch).map(|k| sentences[(i * batch + k) % sentences.len()].as_str()).collect();
                    let body = json!({ "input": inputs, "model": "bench" }).to_string();
                    let status = send_keeping(&mut connection, port, &path, body.as_bytes());
                    records.lock().unwrap().push((status, scheduled.elapsed(), batch));
                }
            })
        })
        .collect();
    for client in clients {
        let _ = client.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let records = records.lock().unwrap();
    let mut statuses = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut done = 0;
    for (status, latency, batch) in records.iter() {
        *statuses.entry(status.clone()).or_insert(0) += 1;
        if status == "200" {
            done += batch;
            latencies.push(latency.as_secs_f64() * 1e3);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| if latencies.is_empty() { f64::NAN } else { latencies[((latencies.len() - 1) as f64 * q).round() as usize] };
    LoadResult { sentences_per_s: done as f64 / elapsed, p50_ms: quantile(0.5), p99_ms: quantile(0.99), statuses }
}

fn send_keeping(connection: &mut Option<Connection>, port: u16, path: &str, body: &[u8]) -> String {
    if connection.is_none() {
        match Connection::open(port) {
            Ok(c) => *connection = Some(c),
            Err(_) => return "connect-error".into(),
        }
    }
    match connection.as_mut().expect("connected").send("POST", path, body) {
        Ok((status, keep)) => {
            if !keep {
                *connection = None;
            }
            status.to_string()
        }
        Err(_) => {
            *connection = None;
            "io-error".into()
        }
    }
}

/// A keep-alive HTTP/1.1 connection that reads bodies by Content-Length.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(port: u16) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Connection { reader: BufReader::new(stream) })
    }

    /// The status, and whether the connection stays open.
    fn send(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, bool)> {
        let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut keep) = (0usize, true);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().map_err(std::io::Error::other)?;
            } else if lower.starts_with("connection:") && lower.contains("close") {
                keep = false;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, keep))
    }
}

/// The OpenAI package and huggingface_hub's TEI client against simcse serve, unchanged.
fn client_check(args: &ServeBenchArgs, port: u16) -> Value {
    let output = Command::new(&args.python)
        .arg(crate::process::baseline_script("serve_clients.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&args.sentences)
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| json!({ "error": stdout.to_string() }))
        }
        Ok(out) => json!({ "error": String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_string() }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn print_table(figures: &Value) {
    let servers = &figures["servers"];
    if servers.get("infinity").is_none() || servers.get("simcse").is_none() {
        outln!("{}", serde_json::to_string_pretty(servers).unwrap_or_default());
        return;
    }
    outln!("| setting | simcse serve sentences/s | p50 / p99 ms | infinity-emb sentences/s | p50 / p99 ms | ratio |");
    outln!("|---|---|---|---|---|---|");
    for (i, (batch, concurrency)) in SETTINGS.iter().enumerate() {
        let ours = &servers["simcse"]["settings"][i]["result"];
        let theirs = &servers["infinity"]["settings"][i]["result"];
        let rate = |r: &Value| r["sentences_per_s"].as_f64().unwrap_or(f64::NAN);
        outln!(
            "| batch {batch} x {concurrency} | {:.0} | {:.1} / {:.1} | {:.0} | {:.1} / {:.1} | {:.2}x |",
            rate(ours),
            ours["p50_ms"].as_f64().unwrap_or(f64::NAN),
            ours["p99_ms"].as_f64().unwrap_or(f64::NAN),
            rate(theirs),
            theirs["p50_ms"].as_f64().unwrap_or(f64::NAN),
            theirs["p99_ms"].as_f64().unwrap_or(f64::NAN),
            rate(ours) / rate(theirs)
        );
    }
    for name in ["simcse", "infinity"] {
        let server = &servers[name];
        outln!(
            "{name}: overload at {:.0} requests/s -> {} (p99 {:.0} ms); peak RSS {:.0} MiB; soak RSS {:.0} -> {:.0} MiB",
            server["overload"]["requests_per_s"].as_f64().unwrap_or(0.0),
            server["overload"]["result"]["statuses"],
            server["overload"]["result"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
            server["peak_rss_mib"].as_f64().unwrap_or(0.0),
            server["soak"]["rss_start_mib"].as_f64().unwrap_or(0.0),
            server["soak"]["rss_end_mib"].as_f64().unwrap_or(0.0),
        );
    }
    let largest = servers["simcse"]["settings"][2]["result"]["sentences_per_s"].as_f64().unwrap_or(0.0);
    let offline = figures["offline_encode_sentences_per_s"].as_f64().unwrap_or(f64::NAN);
    outln!("simcse serve at batch 32 x 16: {largest:.0} sentences/s = {:.0}% of simcse encode's {offline:.0} offline", 100.0 * largest / offline);
    outln!("clients: {}", servers["simcse"]["clients"]);
}
