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
    /// and digest, runs `verify` on the complete file, and renames to the final name. On a
    /// mismatch or a refusal the partial file is removed. Returns the hex sha256 and the size.
    pub(crate) fn commit(
        mut self,
        what: &str,
        expected_sha: Option<&str>,
        expected_size: Option<u64>,
        verify: &dyn Fn(&Path) -> Result<()>,
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
        if let Err(e) = verify(&self.path) {
            self.remove();
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&self.path, &self.dest) {
            self.remove();
            return Err(Error::io("renaming", &self.path, e));
        }
        Ok((actual, self.written))
    }

    /// Deletes the partial file (best effort: the error being reported matters more).
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accepts any complete file: for downloads pinned by a digest, which says all there is to say.
pub(crate) fn any_file(_: &Path) -> Result<()> {
    Ok(())
}

/// Refuses a file that is not a well-formed GGUF model (header, metadata, tensor index, every
/// tensor inside the file), so a URL or path pull never installs a web page, a text file or a
/// cut-off download. `source_name` is the URL or path the keeper gave, for the message.
pub(crate) fn require_gguf(path: &Path, source_name: &str) -> Result<()> {
    match hearth_gguf::Gguf::open(path) {
        Ok(_) => Ok(()),
        Err(hearth_gguf::Error::Io { source, .. }) => Err(Error::io("reading", path, source)),
        Err(e) => Err(not_gguf(source_name, &e)),
    }
}

pub(crate) fn not_gguf(source_name: &str, problem: &hearth_gguf::Error) -> Error {
    Error::NotGguf {
        source_name: source_name.to_string(),
        problem: problem.to_string(),
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

/// The name a URL or path pull is installed under, `STEM.gguf` in `models/`, made from the last
/// name of what the keeper gave: only letters, digits, `.`, `_` and `-` (anything else becomes
/// `_`), a `.gguf` ending dropped, never hidden, never empty, at most 80 characters. So it can
/// never be a path, never leave `models/`, and never be one of Hearth's own files (`index.json`,
/// the lock and `.partial` files), none of which ends in `.gguf`.
pub fn local_stem(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let last = match last.len().checked_sub(".gguf".len()) {
        Some(cut) if last.is_char_boundary(cut) && last[cut..].eq_ignore_ascii_case(".gguf") => {
            &last[..cut]
        }
        _ => last,
    };
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A leading '-' would read as an option on a command line.
    let stem: String = cleaned
        .trim_start_matches(['.', '-'])
        .chars()
        .take(80)
        .collect();
    if stem.is_empty() {
        "model".to_string()
    } else {
        stem
    }
}

/// Decodes `%XX` escapes of a URL's file name (`My%20Model.gguf` is `My Model.gguf`); anything
/// that is not a valid escape stays as it is, and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn local_names_are_plain_file_names() {
        assert_eq!(local_stem("My-Model.Q8_0.gguf"), "My-Model.Q8_0");
        assert_eq!(local_stem("x.GGUF"), "x");
        assert_eq!(local_stem("index.json"), "index.json");
        assert_eq!(local_stem("../../etc/passwd"), "passwd");
        assert_eq!(local_stem("a\\b\\c.gguf"), "c");
        assert_eq!(local_stem("..."), "model");
        assert_eq!(local_stem(".gguf"), "model");
        assert_eq!(local_stem("-rf"), "rf");
        assert_eq!(local_stem("My Model?.gguf"), "My_Model_");
        assert_eq!(local_stem("模型.gguf"), "模型");
        assert_eq!(local_stem(&"a".repeat(300)).len(), 80);
        // A multi-byte character just before the ending is cut whole, never split.
        assert_eq!(local_stem("é"), "é");
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("My%20Model%3F.gguf"), "My Model?.gguf");
        assert_eq!(percent_decode("..%2F..%2Fx"), "../../x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%E6%A8%A1"), "模");
    }

    #[test]
    fn partial_path_appends() {
        assert_eq!(
            partial_path(Path::new("/a/b.gguf")),
            Path::new("/a/b.gguf.partial")
        );
    }
}
