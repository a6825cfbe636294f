//! Running a command as a child process and measuring it: wall time and peak resident memory
//! (of that child alone, as GNU time reports it).

use anyhow::{bail, Context};
use serde::Serialize;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub wall_s: f64,
    pub peak_rss_bytes: u64,
    #[serde(skip)]
    pub stdout: String,
}

/// GNU time: it reports the peak RSS of a child it forked itself, from a process of a few MB.
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `command` to completion and measures its wall time and peak RSS. The peak comes from
/// GNU time, which the command runs under: Linux carries the parent's resident memory over
/// into a child's `ru_maxrss` through fork and exec, so `wait4` from this process (libtorch
/// linked, ~120 MB) would put a floor of this process's size under every figure. Without GNU
/// time (Debian package `time`) it is `wait4`'s figure, and a note says it is only an upper bound.
pub fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let description = format!("{command:?}");
    let report = if std::path::Path::new(GNU_TIME).is_file() { Some(tempfile::NamedTempFile::new()?) } else { None };
    let mut wrapped;
    let run = match &report {
        Some(report) => {
            wrapped = under_gnu_time(command, report.path());
            &mut wrapped
        }
        None => {
            note_no_gnu_time();
            command
        }
    };
    let started = Instant::now();
    let mut child = run
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {description}"))?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut stdout)?;
    child.stderr.take().expect("piped").read_to_string(&mut stderr)?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("waiting for {description}: {}", std::io::Error::last_os_error());
    }
    let wall_s = started.elapsed().as_secs_f64();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{description} failed (wait status {status}):\n{stderr}");
    }
    // Both report kilobytes.
    let peak_kb = match &report {
        Some(report) => {
            let text = std::fs::read_to_string(report.path())?;
            text.trim().parse::<u64>().with_context(|| format!("{GNU_TIME} reported {text:?} for {description}"))?
        }
        None => usage.ru_maxrss as u64,
    };
    Ok(Measured { wall_s, peak_rss_bytes: peak_kb * 1024, stdout })
}

/// `command` run as `/usr/bin/time -f %M -o REPORT PROGRAM ARGS...`, in its directory and
/// environment.
fn under_gnu_time(command: &Command, report: &std::path::Path) -> Command {
    let mut wrapped = Command::new(GNU_TIME);
    wrapped.arg("-f").arg("%M").arg("-o").arg(report).arg(command.get_program()).args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

fn note_no_gnu_time() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        errln!("note: no {GNU_TIME}: peak RSS figures are wait4's, which include this process's own size as a floor")
    });
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// What the figures were measured on, recorded beside them.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory_gib": (mem_kb as f64 / 1048576.0 * 10.0).round() / 10.0,
    })
}

/// One side of a comparison: a command run in its own process. Where `reports` is set, the
/// command's last line of output is a JSON object of its own timings (load, encode, ...).
pub struct Contender {
    pub name: String,
    pub command: Box<dyn Fn() -> Command>,
    pub reports: bool,
}

/// What the runs of one contender measured.
pub struct Runs {
    pub name: String,
    pub processes: Vec<Measured>,
    pub reports: Vec<serde_json::Value>,
}

impl Runs {
    pub fn wall_s(&self) -> f64 {
        median(&self.processes.iter().map(|m| m.wall_s).collect::<Vec<_>>())
    }

    pub fn peak_rss_bytes(&self) -> u64 {
        self.processes.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0)
    }

    /// The median of a timing the command reported itself.
    pub fn reported(&self, key: &str) -> f64 {
        median(&self.reports.iter().map(|r| r[key].as_f64().unwrap_or(f64::NAN)).collect::<Vec<_>>())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "wall_s_median": self.wall_s(),
            "wall_s": self.processes.iter().map(|m| m.wall_s).collect::<Vec<_>>(),
            "peak_rss_bytes": self.peak_rss_bytes(),
            "reports": self.reports,
        })
    }
}

/// One warm-up run of each contender, then `runs` rounds in which each runs once in turn.
pub fn run_alternating(contenders: &[Contender], runs: usize) -> anyhow::Result<Vec<Runs>> {
    anyhow::ensure!(runs > 0, "--runs must be at least 1");
    let run_once = |c: &Contender| -> anyhow::Result<(Measured, Option<serde_json::Value>)> {
        let measured = measure(&mut (c.command)()).with_context(|| format!("running {}", c.name))?;
        let report = if c.reports {
            let last = measured.stdout.lines().last().unwrap_or("");
            Some(serde_json::from_str(last).with_context(|| format!("{} printed {last:?}, not its timings", c.name))?)
        } else {
            None
        };
        Ok((measured, report))
    };
    errln!("warming up (one run each)");
    for c in contenders {
        run_once(c)?;
    }
    let mut results: Vec<Runs> =
        contenders.iter().map(|c| Runs { name: c.name.clone(), processes: vec![], reports: vec![] }).collect();
    for round in 1..=runs {
        errln!("run {round}/{runs}");
        for (c, r) in contenders.iter().zip(&mut results) {
            let (measured, report) = run_once(c)?;
            r.processes.push(measured);
            r.reports.extend(report);
        }
    }
    Ok(results)
}

/// Writes the figures as pretty JSON, whole or not at all; of the directory, only the last level
/// is created (`target/bench` in a checkout that has built).
pub fn write_figures(path: &std::path::Path, figures: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        simcse_core::atomic::create_dir(parent)?;
    }
    simcse_core::atomic::write_bytes(path, &serde_json::to_vec_pretty(figures)?)?;
    Ok(())
}

/// A baseline script of bench/python/: the checkout's the command runs in (the GPU machine
/// gets a copy of the repository elsewhere), else the one this binary was built from.
pub fn baseline_script(name: &str) -> std::path::PathBuf {
    let here = std::path::Path::new("bench/python").join(name);
    if here.is_file() {
        return here;
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

/// The `simcse` binary measured: `$SIMCSE` if set, else the one built beside this benchmark
/// binary (`target/release/simcse` for `target/release/simcse-bench`).
pub fn simcse_binary() -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("SIMCSE") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name("simcse");
    anyhow::ensure!(
        sibling.is_file(),
        "{} not found: build it (cargo build --release) or set SIMCSE to the binary to measure",
        sibling.display()
    );
    Ok(sibling)
}

/// A Python script run as a contender: `python SCRIPT ARGS...`, reporting its own timings.
pub fn python_contender(name: &str, python: &std::path::Path, script: std::path::PathBuf, args: Vec<std::ffi::OsString>) -> Contender {
    let python = python.to_path_buf();
    Contender {
        name: name.into(),
        reports: true,
        command: Box::new(move || {
            let mut c = Command::new(&python);
            c.arg(&script).args(&args);
            c
        }),
    }
}

/// Our whole process against the baseline's, and against the baseline's own timing of its
/// core (`inner`: the label and the key it reports), with the speedups.
pub fn print_versus(ours: &Runs, theirs: &Runs, inner: (&str, &str)) {
    let mb = |b: u64| b as f64 / 1e6;
    outln!("{:<48} {:>9} {:>12}", "", "seconds", "peak RSS MB");
    outln!("{:<48} {:>9.2} {:>12.0}", format!("{} (whole process)", ours.name), ours.wall_s(), mb(ours.peak_rss_bytes()));
    outln!("{:<48} {:>9.2} {:>12.0}", format!("{} (whole process)", theirs.name), theirs.wall_s(), mb(theirs.peak_rss_bytes()));
    outln!("{:<48} {:>9.2}", format!("{}, {}", theirs.name, inner.0), theirs.reported(inner.1));
    outln!(
        "speedup {:.1}x whole process, {:.1}x against {}",
        theirs.wall_s() / ours.wall_s(),
        theirs.reported(inner.1) / ours.wall_s(),
        inner.0
    );
}
