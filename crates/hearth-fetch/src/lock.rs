//! Locks on the data directory, so that two Hearth processes never both own what only one may.
//!
//! - [`Home::lock`] is held for a process's whole life by `hearth serve`. The household's
//!   database assumes one server: at start a server marks every reply still streaming as
//!   interrupted (a crash cut it off), which on a shared directory cuts off a running server's
//!   live replies; and two writers get "database is locked". The lock file records who holds
//!   it, so a second server can name the process to stop.
//! - The index lock is held for the few milliseconds a pull reads, changes and rewrites
//!   `index.json`, so two pulls finishing together both keep their entries.
//!
//! Both are advisory locks (flock on Unix, LockFileEx on Windows) that the operating system
//! drops when the process ends, however it ends: a crash or kill -9 never leaves a stale lock,
//! and the lock file left behind means nothing while nobody holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};

use crate::error::{Error, Result};
use crate::home::Home;

/// The data directory, held by this process until this value is dropped (or the process ends).
#[derive(Debug)]
pub struct HomeLock {
    // Closing the file releases the lock.
    _file: File,
    path: PathBuf,
}

impl HomeLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path, read: bool) -> Result<File> {
    // Never truncate on open: the file holds the current holder's record, and opening it is
    // what a process that will be refused does too.
    OpenOptions::new()
        .read(read)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))
}

pub(crate) fn lock_home(home: &Home, holder: &str) -> Result<HomeLock> {
    let root = home.root();
    std::fs::create_dir_all(root).map_err(|e| Error::io("creating directory", root, e))?;
    let path = home.lock_path();
    let mut file = open_lock_file(&path, true)?;
    // Called through the trait: std's own File::try_lock is newer than the crate's rust-version.
    match FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut record = String::new();
            // Unreadable (Windows refuses reads of a locked range) means an unnamed holder.
            let _ = file.read_to_string(&mut record);
            let (pid, holder) = parse_record(&record);
            return Err(Error::HomeInUse {
                dir: root.to_path_buf(),
                pid,
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
    }
    // Written only by the holder, after taking the lock.
    let record = format!(
        "pid {}\n{}\n",
        std::process::id(),
        holder.replace(['\n', '\r'], " ")
    );
    file.set_len(0)
        .and_then(|()| file.write_all(record.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(|e| Error::io("writing", &path, e))?;
    Ok(HomeLock { _file: file, path })
}

/// `pid N` then the holder's description, as [`lock_home`] writes them.
fn parse_record(record: &str) -> (Option<u32>, Option<String>) {
    let mut lines = record.lines();
    let pid = lines
        .next()
        .and_then(|l| l.strip_prefix("pid "))
        .and_then(|p| p.trim().parse().ok());
    let holder = lines
        .next()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    (pid, holder)
}

/// Runs `change` while holding the index lock (waiting for another process's change to end).
pub(crate) fn with_index_lock<T>(home: &Home, change: impl FnOnce() -> Result<T>) -> Result<T> {
    let dir = home.models_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating directory", &dir, e))?;
    let path = dir.join("index.lock");
    let file = open_lock_file(&path, false)?;
    FileExt::lock(&file).map_err(|e| Error::io("locking", &path, e))?;
    let result = change();
    drop(file);
    result
}

#[cfg(test)]
mod tests {
    use super::parse_record;

    #[test]
    fn lock_records_read_back() {
        assert_eq!(
            parse_record("pid 1234\nhearth serve --listen 127.0.0.1:4314\n"),
            (
                Some(1234),
                Some("hearth serve --listen 127.0.0.1:4314".to_string())
            )
        );
        assert_eq!(parse_record(""), (None, None));
        assert_eq!(parse_record("pid x\n\n"), (None, None));
    }
}
