//! The caller's side: checks a file against the [`Limits`], then reads it one page at a time,
//! each page in a fresh worker process (the same program, started in its worker mode), and
//! turns a worker that ends badly into a plain reason naming the page.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hearth_fetch::human_bytes;

use crate::error::{Error, Result, Stage};
use crate::limits::{check_image_header, check_size, sniff, Kind, Limits};
use crate::ocr::{OcrInput, PageImage, PageOcr, Source};
use crate::worker::{Failure, Reply, Request};

/// How often a running worker is looked at.
const POLL: Duration = Duration::from_millis(10);

/// Reads documents through worker processes.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The program to start as a worker (the `hearth` binary) and the arguments that put it in
    /// worker mode.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The PDFium library the workers bind.
    pub library: PathBuf,
    pub limits: Limits,
}

/// One page's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page {
    /// 1-based.
    pub page: u32,
    pub source: Source,
    pub text: String,
    /// The rendered image's size, for a page that went (or must go) to OCR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
    /// Rendering resolution (absent for a photo, which is not rendered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
}

/// A whole document, pages in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Document {
    pub kind: Kind,
    pub pages: Vec<Page>,
}

/// Where reading has got to, for a progress line ("page 3 of 12, reading scan").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Opening,
    Page {
        page: u32,
        of: u32,
        /// Its text layer was unusable and it is being recognised.
        ocr: bool,
    },
}

impl Reader {
    /// Reads `path`: PDF pages in order, or a photo as one page. `ocr` recognises pages without
    /// a usable text layer; without it they come back as [`Source::NeedsOcr`].
    pub fn read_file(
        &self,
        path: &Path,
        password: Option<&str>,
        ocr: Option<&dyn PageOcr>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Document> {
        progress(Progress::Opening);
        if let Some(p) = password {
            if p.len() > MAX_PASSWORD_BYTES {
                return Err(Error::PasswordTooLong {
                    len: p.len(),
                    max: MAX_PASSWORD_BYTES,
                });
            }
        }
        let started = Instant::now();
        let (mut file, size) = open_regular(path)?;
        check_size(size, &self.limits)?;
        let mut head = Vec::with_capacity(1024);
        (&mut file)
            .take(1024)
            .read_to_end(&mut head)
            .map_err(|e| Error::io("reading", path, e))?;
        let kind = sniff(&head)?;
        if kind.is_image() {
            return self.read_photo(path, file, kind, ocr, progress);
        }
        // Workers open the file this process opened, not the path again: a path swapped after
        // the checks (for a bigger file or a pipe) is never read.
        let opened = opened_path(&file, path);
        let budget = Duration::from_secs(self.limits.document_wall_seconds);
        let pages = match self.call(&opened, password, None, budget)? {
            (Reply::Info { pages }, _) => pages,
            (other, _) => return Err(unexpected(Stage::Open, &other)),
        };
        if pages <= 0 {
            return Err(Error::NoPages);
        }
        if pages > self.limits.max_pages as i64 {
            return Err(Error::TooManyPages {
                pages: pages as u64,
                max: self.limits.max_pages,
            });
        }
        let of = pages as u32;
        let mut out = Vec::with_capacity(of as usize);
        let mut kept = 0u64;
        for n in 1..=of {
            progress(Progress::Page {
                page: n,
                of,
                ocr: false,
            });
            let stage = Stage::Page(n);
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::DocumentTime {
                    page: n,
                    seconds: self.limits.document_wall_seconds,
                });
            }
            let (reply, pixels) = self.call(&opened, password, Some(n), left)?;
            let Reply::Page {
                text,
                usable,
                raster,
                ..
            } = reply
            else {
                return Err(unexpected(stage, &reply));
            };
            let text = clean_text(&text);
            kept += text.len() as u64;
            if text.len() as u64 > self.limits.max_page_text_bytes
                || kept > self.limits.max_text_bytes
            {
                let max = if text.len() as u64 > self.limits.max_page_text_bytes {
                    self.limits.max_page_text_bytes
                } else {
                    self.limits.max_text_bytes
                };
                return Err(Error::TextTooLarge {
                    page: n,
                    max: human_bytes(max),
                });
            }
            if usable {
                out.push(Page {
                    page: n,
                    source: Source::TextLayer,
                    text,
                    image: None,
                });
                continue;
            }
            let Some(raster) = raster else {
                return Err(Error::Protocol {
                    stage,
                    detail: "a page without text came without its image".into(),
                });
            };
            let size = ImageSize {
                width: raster.width,
                height: raster.height,
                dpi: Some(raster.dpi),
            };
            let image = PageImage {
                width: raster.width,
                height: raster.height,
                dpi: raster.dpi,
                gray: pixels,
            };
            let page = match ocr {
                Some(engine) => {
                    progress(Progress::Page {
                        page: n,
                        of,
                        ocr: true,
                    });
                    let text = engine
                        .recognize(&OcrInput::Rendered(image))
                        .map_err(|detail| Error::Crashed { stage, detail })?;
                    Page {
                        page: n,
                        source: Source::Ocr,
                        text,
                        image: Some(size),
                    }
                }
                None => Page {
                    page: n,
                    source: Source::NeedsOcr,
                    text,
                    image: Some(size),
                },
            };
            out.push(page);
        }
        Ok(Document {
            kind: Kind::Pdf,
            pages: out,
        })
    }

    fn read_photo(
        &self,
        path: &Path,
        mut file: File,
        kind: Kind,
        ocr: Option<&dyn PageOcr>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Document> {
        // From the handle already checked, and never past the size cap, whatever the file has
        // become since.
        file.rewind().map_err(|e| Error::io("reading", path, e))?;
        let mut bytes = Vec::new();
        file.take(self.limits.max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading", path, e))?;
        check_size(bytes.len() as u64, &self.limits)?;
        let (w, h) = check_image_header(&bytes, &self.limits)?;
        let size = ImageSize {
            width: w as u32,
            height: h as u32,
            dpi: None,
        };
        progress(Progress::Page {
            page: 1,
            of: 1,
            ocr: ocr.is_some(),
        });
        let (source, text) = match ocr {
            Some(engine) => {
                let text =
                    engine
                        .recognize(&OcrInput::Photo { kind, bytes })
                        .map_err(|detail| Error::Crashed {
                            stage: Stage::Page(1),
                            detail,
                        })?;
                (Source::Ocr, text)
            }
            None => (Source::NeedsOcr, String::new()),
        };
        Ok(Document {
            kind,
            pages: vec![Page {
                page: 1,
                source,
                text,
                image: Some(size),
            }],
        })
    }

    /// Runs one worker to its end, within `wall` (at most the per-page limit), and returns its
    /// reply and any pixels after it. The worker is killed and reaped on every way out.
    fn call(
        &self,
        file: &Path,
        password: Option<&str>,
        page: Option<u32>,
        wall: Duration,
    ) -> Result<(Reply, Vec<u8>)> {
        let stage = page.map_or(Stage::Open, Stage::Page);
        let request = Request {
            library: self.library.clone(),
            file: file.to_path_buf(),
            password: password.map(str::to_string),
            page,
            limits: self.limits.clone(),
        };
        let mut line = serde_json::to_vec(&request).map_err(|e| Error::Protocol {
            stage,
            detail: e.to_string(),
        })?;
        line.push(b'\n');
        let spawn_error = |e: std::io::Error| Error::Spawn {
            program: self.program.clone(),
            detail: e.to_string(),
        };
        // The worker gets no environment of ours (no tokens, no proxy settings, no paths into
        // the household's data): the request names everything it needs.
        let mut child = Reaped(
            Command::new(&self.program)
                .args(&self.args)
                .env_clear()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(spawn_error)?,
        );
        let per_page = Duration::from_secs(self.limits.worker_wall_seconds);
        let limit = per_page.min(wall);
        let started = Instant::now();
        // Written on its own thread, inside the deadline: a worker that never reads its stdin
        // is ended by the clock, not waited on.
        let stdin = child.0.stdin.take();
        let writer = std::thread::Builder::new()
            .name("docs-request".into())
            .spawn(move || {
                if let Some(mut stdin) = stdin {
                    let _ = stdin.write_all(&line);
                }
            })
            .map_err(spawn_error)?;
        // The largest honest answer: a rendered page plus its text and framing.
        let max_reply = self.limits.max_image_pixels.min(40_000_000)
            + self.limits.max_page_text_bytes.saturating_mul(4)
            + (1 << 20);
        let out = reader_thread(child.0.stdout.take(), max_reply + 1).map_err(spawn_error)?;
        let err = reader_thread(child.0.stderr.take(), 64 << 10).map_err(spawn_error)?;
        let (status, we_killed) = wait_with_deadline(&mut child.0, started, limit)
            .map_err(|e| Error::io("waiting for the document reader", &self.program, e))?;
        let _ = writer.join();
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if we_killed {
            if limit < per_page {
                return Err(Error::DocumentTime {
                    page: page.unwrap_or(1),
                    seconds: self.limits.document_wall_seconds,
                });
            }
            return Err(Error::WallTime {
                stage,
                seconds: self.limits.worker_wall_seconds,
            });
        }
        if !status.success() {
            return Err(self.classify(stage, status, &stderr));
        }
        if stdout.len() as u64 > max_reply {
            return Err(Error::ReplyTooLarge { stage });
        }
        let newline = stdout
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| Error::Protocol {
                stage,
                detail: "no answer".into(),
            })?;
        let reply: Reply =
            serde_json::from_slice(&stdout[..newline]).map_err(|e| Error::Protocol {
                stage,
                detail: e.to_string(),
            })?;
        let pixels = stdout[newline + 1..].to_vec();
        if let Reply::Failed { failure } = reply {
            return Err(self.failure(stage, failure));
        }
        if let Reply::Page {
            raster: Some(r), ..
        } = &reply
        {
            if pixels.len() as u64 != r.width as u64 * r.height as u64 {
                return Err(Error::Protocol {
                    stage,
                    detail: format!(
                        "{} bytes of image for {} × {} pixels",
                        pixels.len(),
                        r.width,
                        r.height
                    ),
                });
            }
        }
        Ok((reply, pixels))
    }

    fn failure(&self, stage: Stage, failure: Failure) -> Error {
        match failure {
            Failure::PasswordNeeded => Error::PasswordNeeded,
            Failure::WrongPassword => Error::WrongPassword,
            Failure::Damaged { detail } => Error::Damaged { stage, detail },
            Failure::ImageTooLarge { width, height } => Error::ImageTooLarge {
                subject: match stage {
                    Stage::Page(n) => format!("page {n} has a picture of"),
                    Stage::Open => "this PDF has a picture of".into(),
                },
                width,
                height,
                max_megapixels: self.limits.max_image_pixels / 1_000_000,
            },
            Failure::Library { detail } => Error::Library {
                path: self.library.clone(),
                detail,
            },
            Failure::TooDeep => Error::TooDeep {
                max: crate::limits::MAX_NESTING,
            },
            Failure::Request { detail } => Error::Protocol { stage, detail },
        }
    }

    /// Names why a worker ended badly. PDFium ends the process on purpose when an allocation
    /// fails (a trap or an abort), and Rust's allocator aborts with a message; under the
    /// address-space limit those are the memory limit at work.
    fn classify(&self, stage: Stage, status: ExitStatus, stderr: &[u8]) -> Error {
        use std::os::unix::process::ExitStatusExt;
        let text = String::from_utf8_lossy(stderr).to_lowercase();
        let memory = || Error::OutOfMemory {
            stage,
            limit: human_bytes(self.limits.worker_memory),
        };
        if text.contains("memory allocation of")
            || text.contains("out of memory")
            || text.contains("cannot allocate memory")
        {
            return memory();
        }
        match status.signal() {
            // SIGXCPU: the soft CPU limit; SIGKILL from the kernel: the hard one (the wall
            // clock's kill is ours and handled before this).
            Some(24) | Some(9) => Error::CpuTime {
                stage,
                seconds: self.limits.worker_cpu_seconds,
            },
            // SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGSEGV: PDFium's deliberate crash on a failed
            // allocation, or a real crash on a malformed file.
            Some(4) | Some(5) | Some(6) => memory(),
            Some(sig) => Error::Crashed {
                stage,
                detail: format!("signal {sig}"),
            },
            None => Error::Crashed {
                stage,
                detail: format!(
                    "exit status {}{}",
                    status.code().unwrap_or(-1),
                    last_line(&text)
                ),
            },
        }
    }
}

/// A page's text as plain text: PDFium's `\r\n` line ends become `\n`, and control
/// characters other than newline and tab are dropped, so a document cannot send terminal escape
/// sequences to whoever prints it, nor the bidi embeddings, overrides and isolates that make
/// text show in another order than it is read (joiners and marks stay: real scripts need them).
pub fn clean_text(text: &str) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    unified
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .filter(|c| !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .collect()
}

fn last_line(text: &str) -> String {
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => format!(": {}", l.trim()),
        None => String::new(),
    }
}

fn unexpected(stage: Stage, reply: &Reply) -> Error {
    Error::Protocol {
        stage,
        detail: format!("unexpected answer {reply:?}"),
    }
}

/// Longest password accepted: PDF's own limit is 127 bytes; anything far longer is a mistake or
/// an attempt to stall the request pipe.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A worker that is killed (if still running) and reaped however the call ends: an error, an
/// early return or a panic leaves no stray worker and no zombie.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Opens `path` once for everything that follows: without blocking (a FIFO opened for reading
/// would wait for a writer forever), refusing anything but a regular file, its size taken from
/// the open handle.
fn open_regular(path: &Path) -> Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::io("reading", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("reading", path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok((file, meta.len()))
}

/// The path a worker opens: this process's own descriptor for the file, which reaches the file
/// that was checked (not whatever the name points to now). Where `/proc` is missing, the
/// absolute path.
fn opened_path(file: &File, path: &Path) -> PathBuf {
    use std::os::fd::AsRawFd;
    let own = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        file.as_raw_fd()
    ));
    if own.exists() {
        own
    } else {
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Reads a pipe to its end on a thread, keeping at most `cap` bytes (the rest is drained so the
/// worker never blocks on a full pipe).
fn reader_thread(
    pipe: Option<impl Read + Send + 'static>,
    cap: u64,
) -> std::io::Result<std::thread::JoinHandle<Vec<u8>>> {
    std::thread::Builder::new()
        .name("docs-reply".into())
        .spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut p) = pipe {
                let _ = (&mut p).take(cap).read_to_end(&mut kept);
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            kept
        })
}

/// Waits for `child` until `limit` after `start`, killing it then. Returns its status and
/// whether it was killed.
fn wait_with_deadline(
    child: &mut Child,
    start: Instant,
    limit: Duration,
) -> std::io::Result<(ExitStatus, bool)> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            return Ok((child.wait()?, true));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_plain() {
        assert_eq!(clean_text("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(clean_text("red\x1b[31m!\x07"), "red[31m!");
        assert_eq!(clean_text("tab\tkept"), "tab\tkept");
    }

    #[test]
    fn text_cannot_reorder_itself_on_screen() {
        assert_eq!(
            clean_text("pay \u{202E}0001\u{202C} to \u{2067}x\u{2069}"),
            "pay 0001 to x"
        );
        // Joiners carry meaning in Persian and Indic text, and stay.
        assert_eq!(
            clean_text("\u{0645}\u{200C}\u{06CC}"),
            "\u{0645}\u{200C}\u{06CC}"
        );
    }
}
