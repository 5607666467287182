//! Resumable downloads over http(s) with a small blocking client.
//!
//! The bytes land in `NAME.partial` next to the final file. When a connection breaks, the partial
//! file stays; the next attempt (a retry inside the same pull, or the next `hearth pull`) hashes
//! what is there and asks for the rest with `Range: bytes=N-`. A server that answers `200`
//! instead of `206` is sending the whole file again, so the partial file is restarted from zero.
//! Every other failure removes the partial file: a pull that fails for good leaves nothing.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::error::{human_bytes, Error, Result};
use crate::progress::Progress;
use crate::store::{any_file, not_gguf, partial_path, require_gguf, PartialFile, PumpError};

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

/// What a download must turn out to be; anything else is removed and reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect<'a> {
    /// The pinned hex sha256.
    pub sha256: Option<&'a str>,
    /// The pinned size in bytes.
    pub size: Option<u64>,
    /// The bytes must be a GGUF model: refused at the first four bytes when they are not the
    /// GGUF magic (a web page is not downloaded whole), and validated whole before the rename.
    pub gguf: bool,
}

/// Why a download stopped, and whether what it received is worth keeping for a resume.
struct Failed {
    error: Error,
    /// The connection broke or could not be made: the bytes received so far are good, and the
    /// next pull can ask for the rest.
    connection: bool,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Failed {
        Failed {
            error,
            connection: false,
        }
    }
}

/// Downloads `url` to `dest`, resuming from `dest.partial` when it exists. Checks what `expect`
/// asks for; returns the digest and size.
///
/// A failure removes `dest.partial`, except when the connection broke after some bytes arrived:
/// those are kept (the error says where) for the next pull to resume.
pub fn download(
    url: &str,
    dest: &Path,
    expect: Expect<'_>,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    let Failed { error, connection } = match fetch(url, dest, expect, progress) {
        Ok(done) => return Ok(done),
        Err(failed) => failed,
    };
    let partial = partial_path(dest);
    let kept = std::fs::metadata(&partial).map_or(0, |m| m.len());
    match error {
        Error::Http { url, message } if connection && kept > 0 => Err(Error::Http {
            url,
            message: format!(
                "{message}; the {} received so far are kept in {} and the next pull resumes from there",
                human_bytes(kept),
                partial.display()
            ),
        }),
        error => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

fn fetch(
    url: &str,
    dest: &Path,
    expect: Expect<'_>,
    progress: &dyn Progress,
) -> std::result::Result<(String, u64), Failed> {
    let what = dest
        .file_name()
        .map_or_else(|| url.to_string(), |n| n.to_string_lossy().into_owned());
    let agent = agent();
    let http_err = |message: String| Error::Http {
        url: url.to_string(),
        message,
    };
    let broken = |message: String| Failed {
        error: http_err(message),
        connection: true,
    };
    let verify = |path: &Path| {
        if expect.gguf {
            require_gguf(path, url)
        } else {
            any_file(path)
        }
    };
    progress.start(&format!("downloading {what}"), expect.size);
    for attempt in 1..=ATTEMPTS {
        let mut out = match PartialFile::resume(dest, expect.size, progress)? {
            Some(p) => p,
            None => PartialFile::create(dest, expect.size)?,
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
                    let size = expect.size.or(total);
                    match out.commit(&what, expect.sha256, size, &verify) {
                        Ok(done) => {
                            progress.finish(&format!("downloaded {what}"));
                            return Ok(done);
                        }
                        // A stale or foreign partial file: it was removed, start over.
                        Err(Error::ShaMismatch { .. } | Error::SizeMismatch { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                out.remove();
                continue;
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(
                    http_err(format!("the server answered {code} {}", r.status_text())).into(),
                )
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(broken(format!("cannot reach the server: {t}")));
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
                out = PartialFile::create(dest, expect.size)?;
                response
                    .header("Content-Length")
                    .and_then(|v| v.parse().ok())
            }
        };
        if let (Some(announced), Some(pinned)) = (total, expect.size) {
            if announced != pinned {
                return Err(Error::SizeMismatch {
                    what: what.clone(),
                    expected: pinned,
                    actual: announced,
                }
                .into());
            }
        }
        let start = out.written();
        let mut body = response.into_reader();
        // The first bytes of a model say whether it is one: a login page or a text file is
        // refused before the rest of it is fetched.
        let mut head = [0u8; 4];
        let mut n_head = 0;
        if expect.gguf && start == 0 {
            while n_head < head.len() {
                match body.read(&mut head[n_head..]) {
                    Ok(0) => break,
                    Ok(n) => n_head += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // The copy below meets the same broken connection and reports it.
                    Err(_) => break,
                }
            }
            if n_head == head.len() && head != hearth_gguf::MAGIC {
                let problem = hearth_gguf::Error::BadMagic { found: head };
                return Err(not_gguf(url, &problem).into());
            }
        }
        let mut body = (&head[..n_head]).chain(body);
        let interrupted = match out.pump(&mut body, progress) {
            Ok(()) => total.is_some_and(|t| out.written() < t),
            Err(PumpError::Read(_)) => true,
            Err(PumpError::Write(e)) => return Err(e.into()),
        };
        if interrupted {
            let made_progress = out.written() > start;
            if attempt < ATTEMPTS && made_progress {
                continue;
            }
            return Err(broken(format!(
                "the connection broke after {} of {} bytes",
                out.written(),
                total.map_or_else(|| "?".to_string(), |t| t.to_string()),
            )));
        }
        let done = out.commit(&what, expect.sha256, expect.size.or(total), &verify)?;
        progress.finish(&format!("downloaded {what}"));
        return Ok(done);
    }
    Err(http_err(format!(
        "gave up after {ATTEMPTS} attempts that made no progress"
    ))
    .into())
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
