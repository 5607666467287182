//! Writing model files safely. Bytes go to `NAME.partial` while a sha256 is computed on the way
//! through; only a complete file whose digest matches is renamed to its final name, so a crash,
//! a full disk or a bad download never leaves something that looks installed.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Size of the copy buffer; large enough that syscalls do not dominate, small enough for stacks
/// of threads.
const CHUNK: usize = 256 * 1024;

/// `dest` with `.partial` appended to its file name.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Why a copy into a [`PartialFile`] stopped.
#[derive(Debug)]
pub(crate) enum PumpError {
    /// Reading the source failed (for downloads: the connection broke); the partial file is kept.
    Read(std::io::Error),
    /// Writing failed (disk full, permissions); the partial file has been removed.
    Write(Error),
}

/// A file being written under `NAME.partial`, hashed as it grows.
pub(crate) struct PartialFile {
    dest: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    written: u64,
    /// The final size when known, for the disk-full message.
    expected_size: Option<u64>,
}

impl PartialFile {
    /// Starts `dest.partial` from empty (truncating any earlier attempt).
    pub(crate) fn create(dest: &Path, expected_size: Option<u64>) -> Result<PartialFile> {
        let path = partial_path(dest);
        let file = File::create(&path).map_err(|e| Error::io("creating", &path, e))?;
        Ok(PartialFile {
            dest: dest.to_path_buf(),
            path,
            out: BufWriter::with_capacity(CHUNK, file),
            hasher: Sha256::new(),
            written: 0,
            expected_size,
        })
    }

    /// Continues an existing `dest.partial`: its bytes are hashed first so that the final digest
    /// covers the whole file. Returns `None` when there is no partial file to resume.
    pub(crate) fn resume(
        dest: &Path,
        expected_size: Option<u64>,
        progress: &dyn Progress,
    ) -> Result<Option<PartialFile>> {
        let path = partial_path(dest);
        let mut file = match OpenOptions::new().read(true).append(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening", &path, e)),
        };
        let mut hasher = Sha256::new();
        let written = hash_reader(&mut file, &mut hasher, progress)
            .map_err(|e| Error::io("reading", &path, e))?;
        Ok(Some(PartialFile {
            dest: dest.to_path_buf(),
            path,
            out: BufWriter::with_capacity(CHUNK, file),
            hasher,
            written,
            expected_size,
        }))
    }

    /// Bytes written so far (including resumed ones).
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Path of the partial file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Copies `src` to the end of the file, reporting the running total to `progress`.
    pub(crate) fn pump(
        &mut self,
        src: &mut dyn Read,
        progress: &dyn Progress,
    ) -> std::result::Result<(), PumpError> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PumpError::Read(e)),
            };
            if let Err(e) = self.out.write_all(&buf[..n]) {
                let err = Error::io_sized("writing", &self.path, e, self.expected_size);
                self.remove();
                return Err(PumpError::Write(err));
            }
            self.hasher.update(&buf[..n]);
            self.written += n as u64;
            progress.set(self.written);
        }
    }

    /// Flushes to disk (so a crash cannot leave a short file under the final name), checks size
    /// and digest, and renames to the final name. On a mismatch the partial file is removed.
    /// Returns the hex sha256 and the size.
    pub(crate) fn commit(
        mut self,
        what: &str,
        expected_sha: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<(String, u64)> {
        let flushed = self
            .out
            .flush()
            .and_then(|()| self.out.get_ref().sync_all());
        if let Err(e) = flushed {
            let err = Error::io_sized("writing", &self.path, e, self.expected_size);
            self.remove();
            return Err(err);
        }
        let actual = hex::encode(self.hasher.finalize_reset());
        if let Some(expected) = expected_size {
            if expected != self.written {
                self.remove();
                return Err(Error::SizeMismatch {
                    what: what.to_string(),
                    expected,
                    actual: self.written,
                });
            }
        }
        if let Some(expected) = expected_sha {
            if expected != actual {
                self.remove();
                return Err(Error::ShaMismatch {
                    what: what.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        std::fs::rename(&self.path, &self.dest)
            .map_err(|e| Error::io("renaming", &self.path, e))?;
        Ok((actual, self.written))
    }

    /// Deletes the partial file (best effort: the error being reported matters more).
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Feeds everything `src` yields into `hasher`; returns the byte count.
fn hash_reader(
    src: &mut dyn Read,
    hasher: &mut Sha256,
    progress: &dyn Progress,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        progress.set(total);
    }
}

/// The hex sha256 and size of a file.
pub fn hash_file(path: &Path, progress: &dyn Progress) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let n =
        hash_reader(&mut file, &mut hasher, progress).map_err(|e| Error::io("reading", path, e))?;
    Ok((hex::encode(hasher.finalize()), n))
}

/// Writes `bytes` to `path` atomically (temporary sibling, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = partial_path(path);
    let result = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| Error::io_sized("writing", &tmp, e, Some(bytes.len() as u64)));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))
}

/// The current time as RFC 3339 UTC, e.g. `2026-11-27T10:12:42Z`.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian), by 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_775_562), "2026-11-27T10:32:42Z");
    }

    #[test]
    fn partial_path_appends() {
        assert_eq!(
            partial_path(Path::new("/a/b.gguf")),
            Path::new("/a/b.gguf.partial")
        );
    }
}
