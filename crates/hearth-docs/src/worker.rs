//! The worker: one process that opens one document and reads one page of it (or counts its
//! pages), inside memory and CPU-time limits it sets on itself before it touches the file.
//! Whatever a hostile file does to PDFium here, it does to this process only; the caller
//! ([`crate::reader`]) sees it end and names the reason.
//!
//! Protocol: the caller writes one JSON [`Request`] line on the worker's stdin (the password
//! travels there, never on the command line, where other users' `ps` would see it); the worker
//! answers one JSON [`Reply`] line on stdout, followed, for a rendered page, by its gray pixels.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use pdfium_render::prelude::*;

use crate::limits::{check_pixels, pdf_nesting, Limits, MAX_NESTING};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Request {
    pub library: PathBuf,
    pub file: PathBuf,
    pub password: Option<String>,
    /// The page to read (1-based); `None` counts pages.
    pub page: Option<u32>,
    pub limits: Limits,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum Reply {
    Info {
        pages: i64,
    },
    Page {
        text: String,
        /// Whether the text layer is usable; when not, a raster follows (if `raster` is set).
        usable: bool,
        images: u32,
        raster: Option<Raster>,
    },
    Failed {
        failure: Failure,
    },
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct Raster {
    pub width: u32,
    pub height: u32,
    pub dpi: u32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub(crate) enum Failure {
    PasswordNeeded,
    WrongPassword,
    Damaged { detail: String },
    ImageTooLarge { width: u64, height: u64 },
    TooDeep,
    Library { detail: String },
    Request { detail: String },
}

/// Runs the worker on this process's stdin and stdout; returns the exit code. The binary's
/// hidden worker mode calls this and nothing else.
pub fn main() -> i32 {
    let mut line = String::new();
    // The request is small; a caller that sends more is not ours.
    let stdin = std::io::stdin();
    let mut handle = stdin.lock().take_limit(1 << 20);
    if let Err(e) = handle.read_line(&mut line) {
        return answer(
            &Reply::Failed {
                failure: Failure::Request {
                    detail: e.to_string(),
                },
            },
            None,
        );
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            return answer(
                &Reply::Failed {
                    failure: Failure::Request {
                        detail: e.to_string(),
                    },
                },
                None,
            )
        }
    };
    if let Err(e) = limit_self(&request.limits) {
        return answer(
            &Reply::Failed {
                failure: Failure::Request {
                    detail: format!("could not set the worker's limits: {e}"),
                },
            },
            None,
        );
    }
    let (reply, pixels) = run(&request);
    answer(&reply, pixels.as_deref())
}

trait TakeLimit: BufRead + Sized {
    fn take_limit(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<T: BufRead> TakeLimit for T {}

/// Caps this process's address space and CPU time. The CPU limit's soft value sends SIGXCPU
/// (which ends the process) and the hard one, a second later, SIGKILL for a process that
/// ignores it.
fn limit_self(limits: &Limits) -> std::io::Result<()> {
    use rlimit::Resource;
    Resource::AS.set(limits.worker_memory, limits.worker_memory)?;
    Resource::CPU.set(limits.worker_cpu_seconds, limits.worker_cpu_seconds + 1)?;
    // A crash must not leave a core file of a stranger's document behind.
    Resource::CORE.set(0, 0)?;
    // Code that takes over PDFium through a hostile file can neither write a file (the
    // library, the household's database) nor start a program. Pipes are not files, so the
    // reply still goes out; NPROC counts the user's processes, so fork fails at once.
    Resource::FSIZE.set(0, 0)?;
    Resource::NPROC.set(0, 0)?;
    // The three pipes, the document, the library and a few more that loading it may need.
    Resource::NOFILE.set(32, 32)?;
    Ok(())
}

fn answer(reply: &Reply, pixels: Option<&[u8]>) -> i32 {
    let mut out = std::io::stdout().lock();
    let ok = serde_json::to_writer(&mut out, reply).is_ok()
        && out.write_all(b"\n").is_ok()
        && pixels.is_none_or(|p| out.write_all(p).is_ok())
        && out.flush().is_ok();
    if ok {
        0
    } else {
        3
    }
}

fn failed(failure: Failure) -> (Reply, Option<Vec<u8>>) {
    (Reply::Failed { failure }, None)
}

fn run(request: &Request) -> (Reply, Option<Vec<u8>>) {
    let bindings = match Pdfium::bind_to_library(&request.library) {
        Ok(b) => b,
        Err(e) => {
            return failed(Failure::Library {
                detail: e.to_string(),
            })
        }
    };
    let pdfium = Pdfium::new(bindings);
    match request.page {
        None => info(&pdfium, request),
        Some(page) => read_page(&pdfium, request, page),
    }
}

/// Why PDFium could not open a document, from its last error code.
fn open_failure(code: std::os::raw::c_ulong, had_password: bool) -> Failure {
    // FPDF_ERR_FILE = 2, FORMAT = 3, PASSWORD = 4, SECURITY = 5 (fpdfview.h).
    match code {
        4 if had_password => Failure::WrongPassword,
        4 => Failure::PasswordNeeded,
        2 => Failure::Damaged {
            detail: "the file could not be opened".into(),
        },
        3 => Failure::Damaged {
            detail: "its structure is not a valid PDF".into(),
        },
        5 => Failure::Damaged {
            detail: "it uses an unsupported security handler".into(),
        },
        _ => Failure::Damaged {
            detail: format!("PDFium error {code}"),
        },
    }
}

fn path_str(request: &Request) -> Result<&str, Failure> {
    request.file.to_str().ok_or_else(|| Failure::Request {
        detail: "the file's path is not UTF-8".into(),
    })
}

/// Counts pages through the raw API: the safe wrapper's page index is 16 bits, and a file
/// claiming 2³¹ pages must be refused by its real count, not a truncated one.
fn info(pdfium: &Pdfium, request: &Request) -> (Reply, Option<Vec<u8>>) {
    let b = pdfium.bindings();
    let path = match path_str(request) {
        Ok(p) => p,
        Err(f) => return failed(f),
    };
    // The file is within the size cap, so reading it whole fits the worker's memory.
    match std::fs::read(&request.file) {
        Ok(bytes) if pdf_nesting(&bytes, MAX_NESTING) > MAX_NESTING => {
            return failed(Failure::TooDeep)
        }
        Ok(_) => {}
        Err(e) => {
            return failed(Failure::Damaged {
                detail: format!("the file cannot be read: {e}"),
            })
        }
    }
    let doc = b.FPDF_LoadDocument(path, request.password.as_deref());
    if doc.is_null() {
        return failed(open_failure(
            b.FPDF_GetLastError(),
            request.password.is_some(),
        ));
    }
    let pages = b.FPDF_GetPageCount(doc) as i64;
    b.FPDF_CloseDocument(doc);
    (Reply::Info { pages }, None)
}

/// A PDFium error on one line (its own formatting spreads over several).
fn pdfium_words(e: &PdfiumError) -> String {
    match e {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            "its structure is not a valid PDF".into()
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::Unknown) => {
            "PDFium could not say why".into()
        }
        other => format!("{other:?}")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// A page's text layer is usable when it has enough readable characters: a scan has none (or
/// a few stray ones from a stamp), and a layer from a font without a Unicode map comes out
/// as replacement or private-use characters.
fn usable_text(text: &str) -> bool {
    let mut readable = 0usize;
    let mut junk = 0usize;
    for c in text.chars() {
        if c.is_whitespace() {
            continue;
        }
        if c == '\u{FFFD}' || ('\u{E000}'..='\u{F8FF}').contains(&c) || c.is_control() {
            junk += 1;
        } else {
            readable += 1;
        }
    }
    readable >= 16 && junk * 4 <= readable
}

fn read_page(pdfium: &Pdfium, request: &Request, number: u32) -> (Reply, Option<Vec<u8>>) {
    let path = match path_str(request) {
        Ok(p) => p,
        Err(f) => return failed(f),
    };
    let document = match pdfium.load_pdf_from_file(path, request.password.as_deref()) {
        Ok(d) => d,
        Err(PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError)) => {
            return failed(if request.password.is_some() {
                Failure::WrongPassword
            } else {
                Failure::PasswordNeeded
            })
        }
        Err(e) => {
            return failed(Failure::Damaged {
                detail: pdfium_words(&e),
            })
        }
    };
    let index = match PdfPageIndex::try_from(number.saturating_sub(1)) {
        Ok(i) => i,
        Err(_) => {
            return failed(Failure::Request {
                detail: format!("page {number} is past what this reader addresses"),
            })
        }
    };
    let page = match document.pages().get(index) {
        Ok(p) => p,
        Err(e) => {
            return failed(Failure::Damaged {
                detail: format!("page {number} cannot be loaded: {}", pdfium_words(&e)),
            })
        }
    };
    // Every picture's size comes from its dictionary, before anything decodes it: a 35000²
    // JBIG2 page is refused here, not discovered by running out of memory.
    let mut images = 0u32;
    for object in page.objects().iter() {
        if let Some(image) = object.as_image_object() {
            images += 1;
            if let (Ok(w), Ok(h)) = (image.width(), image.height()) {
                let (w, h) = (w.max(0) as u64, h.max(0) as u64);
                if w == 0 || h == 0 {
                    // Its decoder would size its buffers from the codec's own header instead.
                    return failed(Failure::Damaged {
                        detail: format!("a picture on page {number} declares no width or height"),
                    });
                }
                if check_pixels("", w, h, &request.limits).is_err() {
                    return failed(Failure::ImageTooLarge {
                        width: w,
                        height: h,
                    });
                }
            }
        }
    }
    let text = match page.text() {
        Ok(t) => t.all(),
        Err(e) => {
            return failed(Failure::Damaged {
                detail: format!(
                    "the text of page {number} cannot be read: {}",
                    pdfium_words(&e)
                ),
            })
        }
    };
    // A page with no pictures has no other text than its layer: a short one (a title page, a
    // "this page is left blank") is that page's text, not a scan.
    if usable_text(&text) || (images == 0 && !text.trim().is_empty()) {
        return (
            Reply::Page {
                text,
                usable: true,
                images,
                raster: None,
            },
            None,
        );
    }
    match render(&page, &request.limits) {
        Ok((raster, gray)) => (
            Reply::Page {
                text,
                usable: false,
                images,
                raster: Some(raster),
            },
            Some(gray),
        ),
        Err(e) => failed(Failure::Damaged {
            detail: format!("page {number} cannot be drawn: {}", pdfium_words(&e)),
        }),
    }
}

/// Renders a page in gray at the limits' resolution, scaled down to fit the pixel cap.
fn render(page: &PdfPage, limits: &Limits) -> Result<(Raster, Vec<u8>), PdfiumError> {
    let (w_pt, h_pt) = (page.width().value.max(1.0), page.height().value.max(1.0));
    let mut dpi = limits.render_dpi.max(1) as f64;
    let pixels = |dpi: f64| (w_pt as f64 * dpi / 72.0) * (h_pt as f64 * dpi / 72.0);
    // Rendering also has a cap of its own (a page a few metres wide is not a 300-dpi job).
    let cap = limits.max_image_pixels.min(40_000_000) as f64;
    if pixels(dpi) > cap {
        dpi *= (cap / pixels(dpi)).sqrt();
    }
    let width = ((w_pt as f64 * dpi / 72.0).floor() as i32).max(1);
    let height = ((h_pt as f64 * dpi / 72.0).floor() as i32).max(1);
    let config = PdfRenderConfig::new()
        .set_fixed_size(width, height)
        .set_format(PdfBitmapFormat::BGRA)
        .render_form_data(true)
        .render_annotations(true);
    let bitmap = page.render_with_config(&config)?;
    let (bw, bh) = (bitmap.width() as usize, bitmap.height() as usize);
    let raw = bitmap.as_raw_bytes();
    let stride = raw.len().checked_div(bh).unwrap_or(0);
    let mut gray = Vec::with_capacity(bw * bh);
    for row in raw.chunks(stride.max(1)).take(bh) {
        for px in row[..bw * 4].chunks_exact(4) {
            // BGRA; ITU-R BT.601 luma weights in integers.
            let (b, g, r) = (px[0] as u32, px[1] as u32, px[2] as u32);
            gray.push(((299 * r + 587 * g + 114 * b + 500) / 1000) as u8);
        }
    }
    Ok((
        Raster {
            width: bw as u32,
            height: bh as u32,
            dpi: dpi.round() as u32,
        },
        gray,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_has_no_usable_text_layer() {
        assert!(!usable_text(""));
        assert!(!usable_text("  \n 3 \n"));
        assert!(!usable_text(&"\u{FFFD}".repeat(100)));
        assert!(usable_text("Dear parents, the school trip is on Friday."));
        // Right-to-left text is text.
        assert!(usable_text("أعزائي الآباء، الرحلة المدرسية يوم الجمعة"));
    }
}
