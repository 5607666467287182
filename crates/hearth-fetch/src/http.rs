//! Resumable downloads over http(s) with a small blocking client.
//!
//! The bytes land in `NAME.partial` next to the final file. When a connection breaks, the partial
//! file stays; the next attempt (a retry inside the same pull, or the next `hearth pull`) hashes
//! what is there and asks for the rest with `Range: bytes=N-`. A server that answers `200`
//! instead of `206` is sending the whole file again, so the partial file is restarted from zero.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::{PartialFile, PumpError};

/// Attempts inside one pull; a retry happens only after an attempt that made progress.
const ATTEMPTS: usize = 4;

/// The last path segment of a URL (query and fragment removed), if it can be a file name.
pub fn file_name_of_url(url: &str) -> Option<String> {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = without_query
        .split_once("://")
        .map_or(without_query, |(_, r)| r);
    let (_, path) = after_scheme.split_once('/')?;
    let name = path.rsplit('/').next()?;
    let ok = !name.is_empty() && name != "." && name != ".." && !name.contains('\\');
    ok.then(|| name.to_string())
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .try_proxy_from_env(true)
        .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Downloads `url` to `dest`, resuming from `dest.partial` when it exists. Checks the sha256 and
/// size when given; returns the digest and size.
pub fn download(
    url: &str,
    dest: &Path,
    expected_sha: Option<&str>,
    expected_size: Option<u64>,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    let what = dest
        .file_name()
        .map_or_else(|| url.to_string(), |n| n.to_string_lossy().into_owned());
    let agent = agent();
    let http_err = |message: String| Error::Http {
        url: url.to_string(),
        message,
    };
    progress.start(&format!("downloading {what}"), expected_size);
    for attempt in 1..=ATTEMPTS {
        let mut out = match PartialFile::resume(dest, expected_size, progress)? {
            Some(p) => p,
            None => PartialFile::create(dest, expected_size)?,
        };
        let have = out.written();
        let mut request = agent.get(url);
        if have > 0 {
            request = request.set("Range", &format!("bytes={have}-"));
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, r)) if have > 0 => {
                // Nothing left to send: the partial file should already be whole.
                let total = r
                    .header("Content-Range")
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|t| t.trim().parse::<u64>().ok());
                if total.is_none_or(|t| t == have) {
                    let size = expected_size.or(total);
                    match out.commit(&what, expected_sha, size) {
                        Ok(done) => {
                            progress.finish(&format!("downloaded {what}"));
                            return Ok(done);
                        }
                        // A stale or foreign partial file: it was removed, start over.
                        Err(Error::ShaMismatch { .. } | Error::SizeMismatch { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                out.remove();
                continue;
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(http_err(format!(
                    "the server answered {code} {}",
                    r.status_text()
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(http_err(format!("cannot reach the server: {t}")));
            }
        };

        let total = match (response.status(), have) {
            (206, _) => {
                let range = response.header("Content-Range").unwrap_or("");
                match parse_content_range(range) {
                    Some((start, total)) if start == have => total,
                    _ => {
                        // The server resumed from somewhere else; start again cleanly.
                        out.remove();
                        continue;
                    }
                }
            }
            (_, 0) => response
                .header("Content-Length")
                .and_then(|v| v.parse().ok()),
            _ => {
                // The server ignored Range and is sending everything: restart from zero.
                out.remove();
                out = PartialFile::create(dest, expected_size)?;
                response
                    .header("Content-Length")
                    .and_then(|v| v.parse().ok())
            }
        };
        if let (Some(announced), Some(pinned)) = (total, expected_size) {
            if announced != pinned {
                out.remove();
                return Err(Error::SizeMismatch {
                    what: what.clone(),
                    expected: pinned,
                    actual: announced,
                });
            }
        }
        let start = out.written();
        let mut body = response.into_reader();
        let interrupted = match out.pump(&mut body, progress) {
            Ok(()) => total.is_some_and(|t| out.written() < t),
            Err(PumpError::Read(_)) => true,
            Err(PumpError::Write(e)) => return Err(e),
        };
        if interrupted {
            let made_progress = out.written() > start;
            if attempt < ATTEMPTS && made_progress {
                continue;
            }
            return Err(http_err(format!(
                "the connection broke after {} of {} bytes; the partial download is kept in {} and the next pull resumes it",
                out.written(),
                total.map_or_else(|| "?".to_string(), |t| t.to_string()),
                out.path().display()
            )));
        }
        let done = out.commit(&what, expected_sha, expected_size.or(total))?;
        progress.finish(&format!("downloaded {what}"));
        return Ok(done);
    }
    Err(http_err(format!(
        "gave up after {ATTEMPTS} attempts that made no progress"
    )))
}

/// `bytes START-END/TOTAL` -> (START, Some(TOTAL)); `*` as total gives `None`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names() {
        assert_eq!(
            file_name_of_url("https://h.example/o/r/resolve/main/x.gguf?download=true"),
            Some("x.gguf".into())
        );
        assert_eq!(file_name_of_url("http://h.example/"), None);
        assert_eq!(file_name_of_url("http://h.example"), None);
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
