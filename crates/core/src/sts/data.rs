//! The evaluation sets and their readers: SentEval's STS12-16 (with SentEval's subset lists
//! and its rule that a pair without a gold score is skipped), STS Benchmark (SentEval's
//! tokenized copy, or the raw csv), SICK-R, and three-column pair files (Chinese STS-B, LCQMC,
//! PAWS-X: `sentence1 \t sentence2 \t score-or-label`). Errors name the file and the line.

use crate::InputError;
use std::path::{Path, PathBuf};

/// One sentence pair with its gold score.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub score: f64,
}

/// A named set of pairs scored with one correlation (an STS12-16 subset, or a split).
#[derive(Debug, Clone)]
pub struct Subset {
    pub name: String,
    pub pairs: Vec<Pair>,
}

/// A task as evaluated: its subsets; with several, SentEval's aggregates are computed.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub subsets: Vec<Subset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SimCSE's table: STS12-16 (all subsets), STS-B test, SICK-R test (and the test split of the rest).
    Test,
    /// Model selection: STS-B dev, SICK-R trial (and the valid split of the rest).
    Dev,
}

/// Where a task's files are and how they are laid out.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// `STS.input.<subset>.txt` (two sentences a line) and `STS.gs.<subset>.txt` (a score a line).
    SentEvalYear { folder: &'static str, subsets: &'static [&'static str] },
    /// `sts-{train,dev,test}.csv`: genre, file, year, id, score, sentence1, sentence2.
    StsBenchmark { folder: &'static str },
    /// `SICK_{train,trial,test_annotated}.txt`, a header row; columns id, A, B, relatedness.
    Sick,
    /// `<name>/<name>.{train,valid,test}.data`: sentence1, sentence2, score or label.
    Pairs { folder: &'static str },
}

#[derive(Debug, Clone, Copy)]
pub struct TaskSpec {
    pub name: &'static str,
    layout: Layout,
    /// Which of `--senteval-dir` / `--zh-dir` / the raw STS-B dir it lives under.
    pub root: Root,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// SentEval's data directory (`<dir>/downstream/STS/...`, `<dir>/downstream/SICK`).
    SentEval,
    /// The Chinese pair sets' directory.
    Zh,
    /// The raw STS-B csv files (`assets/stsb`).
    RawStsb,
}

/// SentEval's task list, with SentEval's subset names (STS13 without SMT, as SentEval ships it).
pub const TASKS: &[TaskSpec] = &[
    TaskSpec { name: "STS12", root: Root::SentEval, layout: Layout::SentEvalYear { folder: "STS12-en-test", subsets: &["MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"] } },
    TaskSpec { name: "STS13", root: Root::SentEval, layout: Layout::SentEvalYear { folder: "STS13-en-test", subsets: &["FNWN", "headlines", "OnWN"] } },
    TaskSpec { name: "STS14", root: Root::SentEval, layout: Layout::SentEvalYear { folder: "STS14-en-test", subsets: &["deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"] } },
    TaskSpec { name: "STS15", root: Root::SentEval, layout: Layout::SentEvalYear { folder: "STS15-en-test", subsets: &["answers-forums", "answers-students", "belief", "headlines", "images"] } },
    TaskSpec { name: "STS16", root: Root::SentEval, layout: Layout::SentEvalYear { folder: "STS16-en-test", subsets: &["answer-answer", "headlines", "plagiarism", "postediting", "question-question"] } },
    TaskSpec { name: "STSBenchmark", root: Root::SentEval, layout: Layout::StsBenchmark { folder: "downstream/STS/STSBenchmark" } },
    TaskSpec { name: "SICKRelatedness", root: Root::SentEval, layout: Layout::Sick },
    TaskSpec { name: "STSB-raw", root: Root::RawStsb, layout: Layout::StsBenchmark { folder: "." } },
    TaskSpec { name: "STS-B-zh", root: Root::Zh, layout: Layout::Pairs { folder: "STS-B" } },
    TaskSpec { name: "LCQMC", root: Root::Zh, layout: Layout::Pairs { folder: "LCQMC" } },
    TaskSpec { name: "PAWSX", root: Root::Zh, layout: Layout::Pairs { folder: "PAWSX" } },
];

pub fn spec(name: &str) -> Option<&'static TaskSpec> {
    TASKS.iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> InputError + '_ {
    move |error| InputError::Io { path: path.into(), error }
}

fn bad_line(path: &Path, line: usize, why: impl std::fmt::Display) -> InputError {
    InputError::Invalid(format!("{}:{line}: {why}", path.display()))
}

fn parse_score(path: &Path, line: usize, text: &str) -> Result<f64, InputError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite())
        .ok_or_else(|| bad_line(path, line, format!("`{text}` is not a score")))
}

/// The lines of a text file, without a trailing empty line.
fn lines(path: &Path) -> Result<Vec<String>, InputError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    Ok(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

/// SentEval's `STSEval.loadFile`: pairs whose gold line is empty are skipped; each sentence
/// is SentEval's tokens joined by single spaces (its batcher's `' '.join`).
pub fn read_sts_subset(dir: &Path, subset: &str) -> Result<Subset, InputError> {
    let input_path = dir.join(format!("STS.input.{subset}.txt"));
    let gold_path = dir.join(format!("STS.gs.{subset}.txt"));
    let inputs = lines(&input_path)?;
    let golds = lines(&gold_path)?;
    if inputs.len() != golds.len() {
        return Err(InputError::Invalid(format!(
            "{} has {} lines but {} has {}: they must pair up line by line",
            input_path.display(),
            inputs.len(),
            gold_path.display(),
            golds.len()
        )));
    }
    let mut pairs = Vec::new();
    for (i, (input, gold)) in inputs.iter().zip(&golds).enumerate() {
        let fields: Vec<&str> = input.split('\t').collect();
        if fields.len() != 2 {
            return Err(bad_line(&input_path, i + 1, format!("expected two tab-separated sentences, found {} fields", fields.len())));
        }
        if gold.is_empty() {
            continue;
        }
        let score = parse_score(&gold_path, i + 1, gold)?;
        pairs.push(Pair { a: normalize_tokens(fields[0]), b: normalize_tokens(fields[1]), score });
    }
    check_scorable(&gold_path, &pairs)?;
    Ok(Subset { name: subset.to_string(), pairs })
}

/// A correlation needs at least two pairs and gold scores that vary; otherwise it is NaN,
/// which would be reported as a score. The message names the file.
pub fn check_scorable(path: &Path, pairs: &[Pair]) -> Result<(), InputError> {
    let why = match pairs {
        [] => "no scored pairs".to_string(),
        [_] => "only one scored pair; a correlation needs at least two".to_string(),
        [first, rest @ ..] if rest.iter().all(|p| p.score == first.score) => {
            format!("every one of its {} pairs has the gold score {}; a correlation needs scores that vary", pairs.len(), first.score)
        }
        _ => return Ok(()),
    };
    Err(InputError::Invalid(format!("{}: {why}", path.display())))
}

fn normalize_tokens(sentence: &str) -> String {
    sentence.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An STS Benchmark csv: tab-separated, score in column 5, sentences in 6 and 7 (from 1).
/// `tokenized`: SentEval's copy, whose sentences are whitespace-tokenized (joined by spaces);
/// the raw csv is taken as it is.
pub fn read_stsb(path: &Path, tokenized: bool) -> Result<Vec<Pair>, InputError> {
    lines(path)?
        .iter()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = line.trim().split('\t').collect();
            if fields.len() < 7 {
                return Err(bad_line(path, i + 1, format!("expected 7 tab-separated fields, found {}", fields.len())));
            }
            let text = |s: &str| if tokenized { normalize_tokens(s) } else { s.to_string() };
            Ok(Pair { a: text(fields[5]), b: text(fields[6]), score: parse_score(path, i + 1, fields[4])? })
        })
        .collect()
}

/// SICK: a header row, then pair id, sentence A, sentence B, relatedness score, ...
pub fn read_sick(path: &Path) -> Result<Vec<Pair>, InputError> {
    lines(path)?
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = line.trim().split('\t').collect();
            if fields.len() < 4 {
                return Err(bad_line(path, i + 1, format!("expected at least 4 tab-separated fields, found {}", fields.len())));
            }
            Ok(Pair { a: normalize_tokens(fields[1]), b: normalize_tokens(fields[2]), score: parse_score(path, i + 1, fields[3])? })
        })
        .collect()
}

/// Three columns: sentence 1, sentence 2, a score (Chinese STS-B) or a 0/1 label (LCQMC, PAWS-X).
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>, InputError> {
    lines(path)?
        .iter()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != 3 {
                return Err(bad_line(path, i + 1, format!("expected `sentence1 \\t sentence2 \\t score`, found {} fields", fields.len())));
            }
            Ok(Pair { a: fields[0].trim().to_string(), b: fields[1].trim().to_string(), score: parse_score(path, i + 1, fields[2])? })
        })
        .collect()
}

/// The directories a task set may draw on.
#[derive(Debug, Clone, Default)]
pub struct DataDirs {
    pub senteval: Option<PathBuf>,
    pub zh: Option<PathBuf>,
    pub raw_stsb: Option<PathBuf>,
}

impl TaskSpec {
    /// The folder the task's files sit in, or why it cannot be known.
    pub fn folder(&self, dirs: &DataDirs) -> Result<PathBuf, InputError> {
        let (root, flag) = match self.root {
            Root::SentEval => (&dirs.senteval, "--senteval-dir"),
            Root::Zh => (&dirs.zh, "--zh-dir"),
            Root::RawStsb => (&dirs.raw_stsb, "--stsb-raw-dir"),
        };
        let root = root.as_ref().ok_or_else(|| InputError::Invalid(format!("task {} needs {flag}", self.name)))?;
        Ok(match self.layout {
            Layout::SentEvalYear { folder, .. } => root.join("downstream/STS").join(folder),
            Layout::StsBenchmark { folder } => root.join(folder),
            Layout::Sick => root.join("downstream/SICK"),
            Layout::Pairs { folder } => root.join(folder),
        })
    }

    /// The files the task reads in a mode.
    fn files(&self, mode: Mode) -> Vec<(String, String)> {
        let split = |test: &str, dev: &str| if mode == Mode::Test { test.to_string() } else { dev.to_string() };
        match self.layout {
            Layout::SentEvalYear { subsets, .. } => subsets
                .iter()
                .flat_map(|s| [(s.to_string(), format!("STS.input.{s}.txt")), (s.to_string(), format!("STS.gs.{s}.txt"))])
                .collect(),
            Layout::StsBenchmark { .. } => vec![(split("test", "dev"), split("sts-test.csv", "sts-dev.csv"))],
            Layout::Sick => vec![(split("test", "dev"), split("SICK_test_annotated.txt", "SICK_trial.txt"))],
            Layout::Pairs { folder } => vec![(split("test", "valid"), format!("{folder}.{}.data", split("test", "valid")))],
        }
    }

    /// The names of the files the task reads in `mode`.
    pub fn expected_files(&self, mode: Mode) -> Vec<String> {
        self.files(mode).into_iter().map(|(_, f)| f).collect()
    }

    /// Whether every file the task needs in `mode` is present.
    pub fn available(&self, dirs: &DataDirs, mode: Mode) -> bool {
        self.folder(dirs).is_ok_and(|folder| self.files(mode).iter().all(|(_, f)| folder.join(f).is_file()))
    }

    /// STS12-16 have only test data.
    pub fn has_mode(&self, mode: Mode) -> bool {
        !(matches!(self.layout, Layout::SentEvalYear { .. }) && mode == Mode::Dev)
    }

    pub fn load(&self, dirs: &DataDirs, mode: Mode) -> Result<Task, InputError> {
        let folder = self.folder(dirs)?;
        let missing: Vec<String> = self.files(mode).into_iter().map(|(_, f)| f).filter(|f| !folder.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(InputError::Invalid(format!(
                "task {}: {} lacks {}; it must hold {}",
                self.name,
                folder.display(),
                missing.join(", "),
                self.expected_files(mode).join(", ")
            )));
        }
        let subsets = match self.layout {
            Layout::SentEvalYear { subsets, .. } => {
                subsets.iter().map(|s| read_sts_subset(&folder, s)).collect::<Result<_, _>>()?
            }
            _ => {
                let (name, file) = self.files(mode).remove(0);
                let path = folder.join(file);
                let pairs = match self.layout {
                    Layout::StsBenchmark { .. } => read_stsb(&path, self.root == Root::SentEval)?,
                    Layout::Sick => read_sick(&path)?,
                    _ => read_pairs(&path)?,
                };
                check_scorable(&path, &pairs)?;
                vec![Subset { name, pairs }]
            }
        };
        Ok(Task { name: self.name.to_string(), subsets })
    }
}
