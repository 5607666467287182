//! `hearth.lock`: nothing the household is served changes without the keeper.
//!
//! The lockfile sits in the data directory, beside `household.db`. It holds one entry per model
//! *that `hearth serve` has served* (at start or when the keeper switched to it on the page);
//! a pulled model that was never served is not in use, so it has no entry until its first serve.
//! `run`, `chat` and `bench` are the keeper's own terminal and do not consult it. An entry pins:
//!
//! - **the bytes**: each file's sha256, with its size, modification time and inode when it was
//!   last hashed. `serve` compares those three with the file at every start and re-hashes only
//!   when one of them changed, so gigabytes are never re-read otherwise; a file whose digest no
//!   longer matches is refused. `hearth verify` always re-hashes, which also catches a change
//!   that kept the size and put the modification time back.
//! - **the chat template** (its sha256, and where it came from: the model file's
//!   `tokenizer.chat_template`, or a template Hearth's catalog puts in its place). A template
//!   from the catalog is stored in full, because a later Hearth may no longer carry it; one from
//!   the file is not, because the file itself is pinned.
//! - **the generation defaults** a request gets when it leaves a field out: temperature, top-k,
//!   top-p, min-p, repeat penalty and its window, and the context size `serve` uses without
//!   `--ctx`.
//! - **the Hearth version** that wrote the entry.
//!
//! When a newer Hearth (or an edited catalog) would use another template or other defaults for
//! a locked model, `serve` keeps serving with the *locked* ones — the template text comes from
//! the lock or from the pinned file, the defaults are plain numbers — says so at start, and lists
//! the difference in Settings, until the keeper accepts it there or with `hearth lock accept`.
//! What the lock pins is text and numbers, not Hearth's code: a fixed bug in how templates are
//! rendered still reaches the household with the upgrade. If a locked template no longer compiles
//! in this Hearth, `serve` refuses the model and names `hearth lock accept`.
//!
//! The file is TOML, models and files in sorted order, rewritten whole (temporary file, then
//! rename) under the same advisory lock as the model index, so a `hearth verify` or `hearth
//! lock accept` in a terminal and a running server never lose each other's changes. Hashing
//! happens outside that lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::progress::Progress;

/// The lockfile's name in the data directory.
pub const FILE_NAME: &str = "hearth.lock";

/// The format version this Hearth writes and reads.
const VERSION: u32 = 1;

/// The whole lockfile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lockfile {
    /// The format version.
    pub version: u32,
    /// Entries by model name, sorted.
    #[serde(default)]
    pub models: BTreeMap<String, ModelLock>,
}

/// What is pinned for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelLock {
    /// Defaults for fields a request leaves out.
    pub defaults: GenDefaults,
    /// The model's files, by path relative to the data directory (`/`-separated), or absolute
    /// for a model served from outside it.
    pub files: BTreeMap<String, FileLock>,
    /// The Hearth version that wrote (or last accepted) this entry.
    pub hearth: String,
    /// `None`: the model has no chat template (a base model that only continues text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateLock>,
}

impl ModelLock {
    /// The template and defaults requests are served with.
    pub fn pins(&self) -> Pins {
        Pins {
            template: self.template.clone(),
            defaults: self.defaults.clone(),
        }
    }
}

/// What a model is served with, beyond its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Pins {
    /// `None`: the model has no chat template.
    pub template: Option<TemplateLock>,
    pub defaults: GenDefaults,
}

/// Where a chat template comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateSource {
    /// The model file's own `tokenizer.chat_template`.
    Gguf,
    /// Hearth's catalog (built-in or the keeper's `catalog.toml`) replaces the file's template.
    Catalog,
}

impl TemplateSource {
    fn describe(self) -> &'static str {
        match self {
            TemplateSource::Gguf => "the model file's",
            TemplateSource::Catalog => "the catalog's",
        }
    }
}

/// A pinned chat template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateLock {
    /// Hex sha256 of the template's text.
    pub sha256: String,
    /// Where the text comes from.
    pub source: TemplateSource,
    /// The text itself, for templates that are not in the (pinned) model file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl TemplateLock {
    /// The pin for `text` from `source`; the text is kept unless the model file holds it.
    pub fn new(text: &str, source: TemplateSource) -> TemplateLock {
        TemplateLock {
            sha256: sha256_hex(text.as_bytes()),
            source,
            text: (source != TemplateSource::Gguf).then(|| text.to_string()),
        }
    }
}

/// The generation defaults of a served model. Plain numbers (floats as the shortest decimal of
/// the `f32` Hearth uses), so that the file reads as the keeper would write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenDefaults {
    /// Context size in tokens when `serve` is not given `--ctx` (before the cap at the model's
    /// trained context, a property of the pinned file).
    pub context: u64,
    pub min_p: f64,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: u64,
    pub repeat_penalty: f64,
    pub temperature: f64,
    pub top_k: u64,
    pub top_p: f64,
}

/// `x` as the `f64` whose decimal is `x`'s shortest one (0.8, not 0.800000011920929).
pub fn f32_decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// A pinned file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLock {
    /// The inode number when it was last hashed (Unix); absent where the system has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// Modification time when it was last hashed, nanoseconds since the Unix epoch.
    pub mtime_ns: u64,
    /// Hex sha256 of the whole file.
    pub sha256: String,
    /// Length in bytes.
    pub size: u64,
}

impl FileLock {
    /// `sha256` for a file with this stamp.
    pub fn new(sha256: String, stamp: FileStamp) -> FileLock {
        FileLock {
            inode: stamp.inode,
            mtime_ns: stamp.mtime_ns,
            sha256,
            size: stamp.size,
        }
    }

    /// The stamp recorded when the file was last hashed.
    pub fn stamp(&self) -> FileStamp {
        FileStamp {
            size: self.size,
            mtime_ns: self.mtime_ns,
            inode: self.inode,
        }
    }

    fn set_stamp(&mut self, s: FileStamp) {
        self.inode = s.inode;
        self.mtime_ns = s.mtime_ns;
        self.size = s.size;
    }
}

/// What `serve` compares instead of hashing: size, modification time and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: u64,
    pub inode: Option<u64>,
}

impl FileStamp {
    /// The stamp of `path` now; `None` if it cannot be read (missing).
    pub fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime_ns = meta
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos();
        #[cfg(unix)]
        let inode = Some(std::os::unix::fs::MetadataExt::ino(&meta));
        #[cfg(not(unix))]
        let inode = None;
        Some(FileStamp {
            size: meta.len(),
            // Past the year 2554 the time saturates; a stamp then still changes with the file.
            mtime_ns: u64::try_from(mtime_ns).unwrap_or(u64::MAX),
            inode,
        })
    }

    /// Which of size, modification time and inode differ from `now`, in words.
    pub fn changes(&self, now: &FileStamp) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.size != now.size {
            v.push("size");
        }
        if self.mtime_ns != now.mtime_ns {
            v.push("modification time");
        }
        if self.inode != now.inode {
            v.push("inode");
        }
        v
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The lockfile's path.
pub fn path(home: &Home) -> PathBuf {
    home.root().join(FILE_NAME)
}

/// The lockfile; a missing one is empty.
pub fn load(home: &Home) -> Result<Lockfile> {
    let path = path(home);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Lockfile {
                version: VERSION,
                models: BTreeMap::new(),
            })
        }
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    parse(&text).map_err(|message| Error::LockParse { path, message })
}

fn parse(text: &str) -> std::result::Result<Lockfile, String> {
    let lock: Lockfile = toml::from_str(text).map_err(|e| e.to_string())?;
    if lock.version != VERSION {
        return Err(format!(
            "it is format version {}, this Hearth reads version {VERSION}",
            lock.version
        ));
    }
    Ok(lock)
}

/// The lockfile as written: a comment saying what it is, then TOML.
pub fn render(lock: &Lockfile) -> Result<String> {
    let body = toml::to_string_pretty(lock).map_err(|e| Error::LockParse {
        path: PathBuf::from(FILE_NAME),
        message: e.to_string(),
    })?;
    Ok(format!(
        "# What Hearth serves, pinned: nothing here changes without the keeper.\n\
         # Written by Hearth; see `hearth lock show`, `hearth verify` and `hearth lock accept`.\n\n{body}"
    ))
}

/// Reads, changes and rewrites the lockfile under the data directory's index lock, so that a
/// change made by another process between the read and the write is never lost.
pub fn update<T>(home: &Home, edit: impl FnOnce(&mut Lockfile) -> T) -> Result<T> {
    std::fs::create_dir_all(home.root())
        .map_err(|e| Error::io("creating directory", home.root(), e))?;
    crate::lock::with_index_lock(home, || {
        let mut lock = load(home)?;
        let out = edit(&mut lock);
        lock.version = VERSION;
        crate::store::write_atomic(&path(home), render(&lock)?.as_bytes())?;
        Ok(out)
    })
}

/// The key a file is locked under: relative to the data directory when inside it.
pub fn file_key(home: &Home, path: &Path) -> String {
    match path.strip_prefix(home.root()) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => path.display().to_string(),
    }
}

/// The file a key names.
pub fn key_path(home: &Home, key: &str) -> PathBuf {
    let p = Path::new(key);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        key.split('/')
            .fold(home.root().to_path_buf(), |p, c| p.join(c))
    }
}

/// A file `serve` is about to use, with a digest known for it without hashing (the index's,
/// when the index's own stamp of the file still holds).
#[derive(Debug, Clone)]
pub struct ServedFile {
    pub path: PathBuf,
    pub known_sha256: Option<String>,
}

/// What [`check_served`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// The model has an entry and its files are the locked bytes; `rehashed` names the files
    /// whose stamp had changed (their new stamps are recorded).
    Locked {
        entry: ModelLock,
        rehashed: Vec<String>,
    },
    /// The model has no entry: these are its files, hashed once; record them with
    /// [`record_new`] together with the pins it is served with.
    New { files: BTreeMap<String, FileLock> },
}

/// Checks the files `serve` will use for `model` against the lock without re-reading them
/// unless their size, modification time or inode changed. Refuses (with what differs and what
/// to do) a file whose digest is not the locked one, a missing file, or a file the entry does
/// not have.
pub fn check_served(
    home: &Home,
    model: &str,
    files: &[ServedFile],
    progress: &dyn Progress,
) -> Result<Checked> {
    let lock = load(home)?;
    let Some(entry) = lock.models.get(model).cloned() else {
        let mut out = BTreeMap::new();
        for f in files {
            out.insert(file_key(home, &f.path), hash_new(f, progress)?);
        }
        return Ok(Checked::New { files: out });
    };
    let keys: Vec<String> = files.iter().map(|f| file_key(home, &f.path)).collect();
    if let Some(key) = keys.iter().find(|k| !entry.files.contains_key(*k)) {
        return Err(Error::LockedFileDiffers {
            model: model.to_string(),
            file: key.clone(),
            problem: format!(
                "the lock pins {} for it, not this file",
                entry.files.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let mut rehashed = Vec::new();
    let mut stamps = Vec::new();
    for (key, f) in keys.iter().zip(files) {
        let locked = &entry.files[key];
        let Some(now) = FileStamp::of(&f.path) else {
            return Err(Error::LockedFileDiffers {
                model: model.to_string(),
                file: key.clone(),
                problem: "the file is missing".into(),
            });
        };
        if now == locked.stamp() {
            continue;
        }
        let changed = locked.stamp().changes(&now).join(", ");
        progress.start(
            &format!("{model}: {changed} changed since it was hashed; checking {key}"),
            Some(now.size),
        );
        let (sha, _) = crate::store::hash_file(&f.path, progress)?;
        if sha != locked.sha256 {
            return Err(Error::LockedFileDiffers {
                model: model.to_string(),
                file: key.clone(),
                problem: format!(
                    "its sha256 is {sha}, the lock pins {} (its {changed} changed)",
                    locked.sha256
                ),
            });
        }
        progress.finish(&format!("{model}: {key} is the locked file"));
        rehashed.push(key.clone());
        stamps.push((key.clone(), now));
    }
    if !stamps.is_empty() {
        update(home, |lock| {
            if let Some(e) = lock.models.get_mut(model) {
                for (key, stamp) in &stamps {
                    if let Some(f) = e.files.get_mut(key) {
                        f.set_stamp(*stamp);
                    }
                }
            }
        })?;
    }
    let entry = load(home)?.models.get(model).cloned().unwrap_or(entry);
    Ok(Checked::Locked { entry, rehashed })
}

fn hash_new(f: &ServedFile, progress: &dyn Progress) -> Result<FileLock> {
    let before = FileStamp::of(&f.path).ok_or_else(|| {
        Error::io(
            "reading",
            &f.path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    let sha256 = match &f.known_sha256 {
        Some(sha) => sha.clone(),
        None => {
            progress.start(
                &format!("hashing {} for the lock", f.path.display()),
                Some(before.size),
            );
            let (sha, _) = crate::store::hash_file(&f.path, progress)?;
            progress.finish(&format!("hashed {}", f.path.display()));
            sha
        }
    };
    Ok(FileLock::new(sha256, before))
}

/// Records a first entry for `model` (files from [`Checked::New`]), unless another process
/// recorded one meanwhile: the first record wins, and is returned.
pub fn record_new(
    home: &Home,
    model: &str,
    files: BTreeMap<String, FileLock>,
    pins: Pins,
) -> Result<ModelLock> {
    update(home, |lock| {
        lock.models
            .entry(model.to_string())
            .or_insert_with(|| ModelLock {
                defaults: pins.defaults,
                files,
                hearth: hearth_version().to_string(),
                template: pins.template,
            })
            .clone()
    })
}

/// The Hearth version written into entries.
pub fn hearth_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// One difference between the locked pins and what this Hearth would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What differs: `template`, or a default's name.
    pub what: String,
    /// The locked value, in words.
    pub locked: String,
    /// What this Hearth would use, in words.
    pub now: String,
}

/// The differences between the locked pins and `now`, in a fixed order; empty when equal.
pub fn diff(locked: &Pins, now: &Pins) -> Vec<Change> {
    let mut out = Vec::new();
    let tpl = |t: &Option<TemplateLock>| match t {
        None => "none (base model)".to_string(),
        Some(t) => format!(
            "{} template, sha256 {}",
            t.source.describe(),
            &t.sha256[..12]
        ),
    };
    let same_template = match (&locked.template, &now.template) {
        (None, None) => true,
        (Some(a), Some(b)) => a.sha256 == b.sha256,
        _ => false,
    };
    if !same_template {
        out.push(Change {
            what: "template".into(),
            locked: tpl(&locked.template),
            now: tpl(&now.template),
        });
    }
    let (a, b) = (&locked.defaults, &now.defaults);
    let mut num = |what: &str, x: String, y: String| {
        if x != y {
            out.push(Change {
                what: what.into(),
                locked: x,
                now: y,
            });
        }
    };
    num("context", a.context.to_string(), b.context.to_string());
    num(
        "temperature",
        a.temperature.to_string(),
        b.temperature.to_string(),
    );
    num("top_k", a.top_k.to_string(), b.top_k.to_string());
    num("top_p", a.top_p.to_string(), b.top_p.to_string());
    num("min_p", a.min_p.to_string(), b.min_p.to_string());
    num(
        "repeat_penalty",
        a.repeat_penalty.to_string(),
        b.repeat_penalty.to_string(),
    );
    num(
        "penalty_last_n",
        a.penalty_last_n.to_string(),
        b.penalty_last_n.to_string(),
    );
    out
}

/// What `serve` uses for a locked model: the locked pins, whatever this Hearth would use now
/// (`now`), and the differences waiting for the keeper.
pub fn served_pins(entry: &ModelLock, now: &Pins) -> (Pins, Vec<Change>) {
    let locked = entry.pins();
    let pending = diff(&locked, now);
    (locked, pending)
}

/// Records `pins` for `model` as accepted by the keeper, and new file digests when given
/// (a file the keeper changed on purpose). Returns the entry's changes, for the keeper to read.
pub fn accept(
    home: &Home,
    model: &str,
    pins: Pins,
    files: Option<BTreeMap<String, FileLock>>,
) -> Result<Vec<Change>> {
    update(home, |lock| {
        let entry = lock.models.get_mut(model)?;
        let mut changes = Vec::new();
        if let Some(files) = files {
            for (key, f) in &files {
                let was = entry.files.get(key).map(|l| l.sha256.clone());
                if was.as_deref() != Some(f.sha256.as_str()) {
                    changes.push(Change {
                        what: format!("file {key}"),
                        locked: was.map_or_else(|| "not locked".into(), |s| format!("sha256 {s}")),
                        now: format!("sha256 {}", f.sha256),
                    });
                }
            }
            entry.files = files;
        }
        changes.extend(diff(&entry.pins(), &pins));
        entry.template = pins.template;
        entry.defaults = pins.defaults;
        entry.hearth = hearth_version().to_string();
        Some(changes)
    })?
    .ok_or_else(|| Error::NotLocked {
        model: model.to_string(),
    })
}

/// How one locked file compares with its lock after hashing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Same digest.
    Ok,
    /// Another digest.
    Differs { sha256: String },
    /// No file at that path.
    Missing,
}

/// Re-hashes one locked file (whatever its stamp says), reporting progress, and records its
/// new stamp when it is still the locked file.
pub fn verify_file(
    home: &Home,
    model: &str,
    key: &str,
    locked: &FileLock,
    progress: &dyn Progress,
) -> Result<FileState> {
    let path = key_path(home, key);
    let Some(before) = FileStamp::of(&path) else {
        return Ok(FileState::Missing);
    };
    progress.start(&format!("{model}: hashing {key}"), Some(before.size));
    let (sha, _) = match crate::store::hash_file(&path, progress) {
        Ok(h) => h,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileState::Missing)
        }
        Err(e) => return Err(e),
    };
    progress.finish(&format!("{model}: hashed {key}"));
    if sha != locked.sha256 {
        return Ok(FileState::Differs { sha256: sha });
    }
    // Only if the file did not change while it was being read.
    if FileStamp::of(&path) == Some(before) && before != locked.stamp() {
        update(home, |lock| {
            if let Some(f) = lock
                .models
                .get_mut(model)
                .and_then(|e| e.files.get_mut(key))
                .filter(|f| f.sha256 == sha)
            {
                f.set_stamp(before);
            }
        })?;
    }
    Ok(FileState::Ok)
}

/// Hashes the files of `model` as they are now, for [`accept`] when the keeper accepts changed
/// bytes. A file whose stamp is unchanged keeps its locked digest without being read.
pub fn rehash_changed(
    home: &Home,
    entry: &ModelLock,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, FileLock>> {
    let mut out = BTreeMap::new();
    for (key, locked) in &entry.files {
        let path = key_path(home, key);
        let stamp = FileStamp::of(&path)
            .ok_or_else(|| Error::io("reading", &path, std::io::ErrorKind::NotFound.into()))?;
        if stamp == locked.stamp() {
            out.insert(key.clone(), locked.clone());
            continue;
        }
        progress.start(&format!("hashing {key}"), Some(stamp.size));
        let (sha256, _) = crate::store::hash_file(&path, progress)?;
        progress.finish(&format!("hashed {key}"));
        out.insert(key.clone(), FileLock::new(sha256, stamp));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
