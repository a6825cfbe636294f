//! Writing files and directories whole or not at all, the one way every writer of the project
//! does it: fill a hidden temporary beside the destination, then rename it into place.
//!
//! - Only the last level is created: the destination's parent must exist (a typo in a path
//!   is an error, not a tree of new directories).
//! - Errors name the user's path, never the temporary.
//! - Replacing a directory is two renames (the old one aside, the new one in); a crash between
//!   them leaves the old copy intact under `.NAME.old-PID`, and [`recover_swap`] puts it back.
//! - Temporaries in progress are registered, so that an interrupt handler can remove them
//!   ([`abandon`]) after waiting for any swap in progress to finish.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct WriteError {
    /// The path the user asked for (never the temporary).
    pub path: PathBuf,
    pub why: String,
}

impl WriteError {
    pub fn new(path: &Path, why: impl std::fmt::Display) -> WriteError {
        WriteError { path: path.to_path_buf(), why: why.to_string() }
    }
}

/// Temporaries being written now, removed by [`abandon`].
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held across the renames that put a result in place, so that an interrupt waits for them.
static SWAP: Mutex<()> = Mutex::new(());

fn lock<T>(mutex: &'static Mutex<T>) -> MutexGuard<'static, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn register(path: &Path) {
    lock(&TEMPORARIES).push(path.to_path_buf());
}

fn unregister(path: &Path) {
    lock(&TEMPORARIES).retain(|p| p != path);
}

/// For an interrupt handler about to end the process: waits for a swap in progress, removes
/// every temporary being written, and returns a guard that keeps any new swap from starting.
pub fn abandon() -> MutexGuard<'static, ()> {
    let guard = lock(&SWAP);
    for path in lock(&TEMPORARIES).drain(..) {
        let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
    }
    guard
}

/// The directory `path` goes in, which must exist: only the last level is ever created.
pub fn existing_parent(path: &Path) -> Result<PathBuf, WriteError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&parent) {
        Ok(meta) if meta.is_dir() => Ok(parent),
        Ok(_) => Err(WriteError::new(path, format!("{} is not a directory", parent.display()))),
        Err(_) => Err(WriteError::new(
            path,
            format!("its parent directory {} does not exist (only the last level of a path is created)", parent.display()),
        )),
    }
}

/// Creates the directory `path` (only the last level); an existing directory is fine.
pub fn create_dir(path: &Path) -> Result<(), WriteError> {
    if path.is_dir() {
        return Ok(());
    }
    existing_parent(path)?;
    std::fs::create_dir(path).map_err(|e| WriteError::new(path, format!("cannot create it: {e}")))
}

fn file_name(path: &Path) -> Result<String, WriteError> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .ok_or_else(|| WriteError::new(path, "has no file name"))
}

fn temporary(path: &Path, kind: &str) -> Result<PathBuf, WriteError> {
    let parent = existing_parent(path)?;
    Ok(parent.join(format!(".{}.{kind}-{}", file_name(path)?, std::process::id())))
}

/// Writes `path` whole or not at all: `fill` writes into a buffered temporary file, which is
/// flushed, synced and renamed over `path`.
pub fn write_file(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<(), WriteError> {
    let tmp = temporary(path, "partial")?;
    register(&tmp);
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let _swap = lock(&SWAP);
        std::fs::rename(&tmp, path)
    })();
    unregister(&tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(WriteError::new(path, e));
    }
    Ok(())
}

pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_file(path, |out| out.write_all(bytes))
}

/// Where a swap of `dst` puts the old copy aside: `.NAME.old-PID` beside it.
fn aside_copies(dst: &Path) -> Vec<PathBuf> {
    let (Ok(parent), Ok(name)) = (existing_parent(dst), file_name(dst)) else { return Vec::new() };
    let prefix = format!(".{name}.old-");
    let Ok(entries) = std::fs::read_dir(&parent) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Undoes a swap that a crash interrupted between its two renames: where `dst` is missing but
/// its old copy was set aside, the old copy goes back. Returns the copy restored.
pub fn recover_swap(dst: &Path) -> Option<PathBuf> {
    if dst.exists() {
        return None;
    }
    let aside = aside_copies(dst).pop()?;
    let _swap = lock(&SWAP);
    std::fs::rename(&aside, dst).ok().map(|_| aside)
}

/// A directory being filled under a temporary name beside its destination; `commit` renames
/// it into place. Dropped before that, it is removed: a failure leaves nothing at the
/// destination.
pub struct StagedDir {
    dir: PathBuf,
    dst: PathBuf,
    committed: bool,
}

impl StagedDir {
    pub fn create(dst: &Path) -> Result<StagedDir, WriteError> {
        if let Some(restored) = recover_swap(dst) {
            let note = format!("note: {} was restored from {}, left by an interrupted write", dst.display(), restored.display());
            let _ = writeln!(std::io::stderr(), "{note}");
        }
        let dir = temporary(dst, "partial")?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| WriteError::new(dst, format!("cannot clear an old temporary: {e}")))?;
        }
        std::fs::create_dir(&dir).map_err(|e| WriteError::new(dst, format!("cannot write beside it: {e}")))?;
        register(&dir);
        Ok(StagedDir { dir, dst: dst.to_path_buf(), committed: false })
    }

    /// The temporary directory to fill.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The destination, for messages about what is being filled.
    pub fn destination(&self) -> &Path {
        &self.dst
    }

    /// Puts the directory in place; an existing destination is replaced only if `replace`.
    pub fn commit(mut self, replace: bool) -> Result<(), WriteError> {
        let dst = self.dst.clone();
        let fail = |why: String| WriteError::new(&dst, why);
        let aside = temporary(&dst, "old")?;
        let swap = lock(&SWAP);
        let existed = dst.exists();
        if existed {
            if !replace {
                return Err(fail("appeared while it was being written; not replaced".into()));
            }
            std::fs::rename(&dst, &aside).map_err(|e| fail(format!("cannot move the old copy aside: {e}")))?;
        }
        if let Err(e) = std::fs::rename(&self.dir, &dst) {
            if existed {
                let _ = std::fs::rename(&aside, &dst);
            }
            return Err(fail(format!("cannot put it in place: {e}")));
        }
        self.committed = true;
        unregister(&self.dir);
        drop(swap);
        if existed {
            let _ = std::fs::remove_dir_all(&aside);
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
            unregister(&self.dir);
        }
    }
}

/// Writes a directory whole: `fill` fills a staged copy, which replaces `dst`.
pub fn write_dir<E: From<WriteError>>(dst: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let staged = StagedDir::create(dst)?;
    fill(staged.path())?;
    staged.commit(true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_leaves_the_old_file_and_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.txt");
        std::fs::write(&path, "old").unwrap();
        let err = write_file(&path, |out| {
            out.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.path, path, "the error names the user's path");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn only_the_last_level_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("typo/deeper/out.txt");
        let err = write_bytes(&deep, b"x").unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!tmp.path().join("typo").exists());
        let err = create_dir(&tmp.path().join("typo/dir")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        create_dir(&tmp.path().join("dir")).unwrap();
        assert!(tmp.path().join("dir").is_dir());
    }

    #[test]
    fn a_swap_cut_between_its_renames_is_recovered() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("checkpoint-5");
        // What a crash after the first rename leaves: the old copy aside, nothing at dst.
        let aside = tmp.path().join(".checkpoint-5.old-4242");
        std::fs::create_dir(&aside).unwrap();
        std::fs::write(aside.join("state.json"), "intact").unwrap();
        assert_eq!(recover_swap(&dst), Some(aside.clone()));
        assert_eq!(std::fs::read_to_string(dst.join("state.json")).unwrap(), "intact");
        assert!(!aside.exists());
        assert_eq!(recover_swap(&dst), None, "nothing to do when dst exists");
    }

    #[test]
    fn a_staged_dir_replaces_or_vanishes() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("model");
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(dst.join("a"), "old").unwrap();
        {
            let staged = StagedDir::create(&dst).unwrap();
            std::fs::write(staged.path().join("a"), "new").unwrap();
            // dropped without commit
        }
        assert_eq!(std::fs::read_to_string(dst.join("a")).unwrap(), "old");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let staged = StagedDir::create(&dst).unwrap();
        std::fs::write(staged.path().join("a"), "new").unwrap();
        assert!(StagedDir::create(&tmp.path().join("other")).is_ok());
        staged.commit(true).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("a")).unwrap(), "new");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
