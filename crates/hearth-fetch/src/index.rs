//! The local registry `<home>/models/index.json`: what has been pulled, where it is, and its
//! digest, so names resolve offline and a model is not re-hashed at every start.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;

/// An installed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The name it resolves by: the catalog name, or the file stem for URL and path pulls.
    pub name: String,
    /// Path relative to the data directory, `/`-separated (a directory for multi-file models).
    pub path: String,
    /// Hex sha256 of the file (of the first file for multi-file models).
    pub sha256: String,
    /// Size in bytes of that file.
    pub size: u64,
    /// Where it came from: `pip:pkg==ver`, a URL, or `file:PATH`.
    pub source: String,
    /// When it was pulled, RFC 3339 UTC.
    pub pulled_at: String,
    /// The file's length and modification time when its digest was last checked; while they are
    /// unchanged the file is trusted without hashing it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Stamp>,
}

impl Installed {
    /// The absolute path of the model file (or directory).
    pub fn full_path(&self, home: &Home) -> PathBuf {
        self.path
            .split('/')
            .fold(home.root().to_path_buf(), |p, c| p.join(c))
    }
}

/// A cheap fingerprint of a file: length and modification time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u128,
}

impl Stamp {
    /// The stamp of the file at `path` now, if it can be read.
    pub fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime_ns = meta
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(Stamp {
            len: meta.len(),
            mtime_ns,
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    models: Vec<Installed>,
}

fn index_path(home: &Home) -> PathBuf {
    home.models_dir().join("index.json")
}

/// All recorded models, in the order they were pulled. A missing index is an empty one.
pub fn load(home: &Home) -> Result<Vec<Installed>> {
    let path = index_path(home);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let file: IndexFile = serde_json::from_str(&text).map_err(|e| Error::IndexParse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(file.models)
}

/// Records `item`, replacing any entry with the same name or the same file.
pub fn record(home: &Home, item: &Installed) -> Result<()> {
    change(home, |models| {
        models.retain(|m| m.name != item.name && m.path != item.path);
        models.push(item.clone());
    })
}

/// Updates the verification stamp of the entry named `name`.
pub fn mark_verified(home: &Home, name: &str, stamp: Stamp) -> Result<()> {
    change(home, |models| {
        for m in models.iter_mut().filter(|m| m.name == name) {
            m.verified = Some(stamp);
        }
    })
}

/// Removes the entry named `name`, if present.
pub fn forget(home: &Home, name: &str) -> Result<()> {
    change(home, |models| models.retain(|m| m.name != name))
}

/// Reads, changes and rewrites the index under the index lock, so that another process's
/// change between the read and the write is never lost.
fn change(home: &Home, edit: impl FnOnce(&mut Vec<Installed>)) -> Result<()> {
    crate::lock::with_index_lock(home, || {
        let mut models = load(home)?;
        edit(&mut models);
        save(home, models)
    })
}

fn save(home: &Home, models: Vec<Installed>) -> Result<()> {
    let path = index_path(home);
    let file = IndexFile { version: 1, models };
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| Error::IndexParse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    text.push('\n');
    crate::store::write_atomic(&path, text.as_bytes())
}
