//! The limits every document passes before (and while) it is read: its size, what it really is
//! (by its first bytes, never its name), its page count, the pixels of any picture in it, its
//! name, and how fast an upload must arrive. Each refusal is an [`Error`] in plain words.

use std::time::{Duration, Instant};

use hearth_fetch::human_bytes;

use crate::error::{Error, Result};

/// What a worker and its caller may spend on one document. The defaults suit a household's
/// letters and scans on a small machine: a 300-dpi A4 page renders to about 9 megapixels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Most pages read from one PDF.
    pub max_pages: u32,
    /// Largest picture decoded (width × height), in a PDF or as an uploaded photo. A 48-megapixel
    /// phone photo passes; decoded in colour it still fits the worker's memory with the page
    /// rendering beside it.
    pub max_image_pixels: u64,
    /// Address space one worker may map (RLIMIT_AS), in bytes.
    pub worker_memory: u64,
    /// CPU-seconds one worker may use for one page (RLIMIT_CPU).
    pub worker_cpu_seconds: u64,
    /// Wall-clock seconds the caller waits for one page before it ends the worker.
    pub worker_wall_seconds: u64,
    /// Resolution a page without a text layer is rendered at for OCR.
    pub render_dpi: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 20,
            max_pages: 2000,
            max_image_pixels: 50_000_000,
            worker_memory: 512 << 20,
            worker_cpu_seconds: 30,
            worker_wall_seconds: 60,
            render_dpi: 300,
        }
    }
}

/// What a file holds, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pdf,
    Png,
    Jpeg,
    Webp,
    Tiff,
}

impl Kind {
    /// Pictures go straight to OCR; only PDFs have pages and a text layer.
    pub fn is_image(self) -> bool {
        self != Kind::Pdf
    }
}

/// How far into a file the PDF header may start: the PDF specification lets readers accept
/// junk before `%PDF-` within the first kilobyte, and real files (mail gateways, scanners)
/// have it.
const PDF_HEADER_WINDOW: usize = 1024;

/// Names what `head` (a file's first bytes) really is. `head` should hold at least the first
/// kilobyte when the file has one.
pub fn sniff(head: &[u8]) -> Result<Kind> {
    if head.is_empty() {
        return Err(Error::Empty);
    }
    let window = &head[..head.len().min(PDF_HEADER_WINDOW)];
    if window.windows(5).any(|w| w == b"%PDF-") {
        return Ok(Kind::Pdf);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Kind::Png);
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Kind::Jpeg);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Ok(Kind::Webp);
    }
    if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        return Ok(Kind::Tiff);
    }
    Err(Error::UnsupportedType {
        found: describe(head),
    })
}

/// A few words on what an unreadable file seems to be, for the refusal.
fn describe(head: &[u8]) -> String {
    let known: [(&[u8], &str); 8] = [
        (b"PK\x03\x04", "a zip archive or an Office document"),
        (b"GIF8", "a GIF picture"),
        (b"\x7fELF", "a program"),
        (b"MZ", "a Windows program"),
        (b"{\\rtf", "an RTF document"),
        (b"\xd0\xcf\x11\xe0", "an old Office document"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"<", "HTML or XML text"),
    ];
    for (magic, what) in known {
        if head.starts_with(magic) {
            return format!("it looks like {what}");
        }
    }
    if std::str::from_utf8(&head[..head.len().min(512)]).is_ok() {
        "it looks like plain text".into()
    } else {
        "its first bytes match no known format".into()
    }
}

/// Refuses a file bigger than the limit, before any of it is read.
pub fn check_size(size: u64, limits: &Limits) -> Result<()> {
    if size == 0 {
        return Err(Error::Empty);
    }
    if size > limits.max_bytes {
        return Err(Error::TooLarge {
            size: human_bytes(size),
            max: human_bytes(limits.max_bytes),
        });
    }
    Ok(())
}

/// Refuses a picture whose header declares more pixels than the limit, reading only its
/// header: a 30000 × 30000 PNG of a few kilobytes is refused without decoding a pixel.
pub fn check_image_header(bytes: &[u8], limits: &Limits) -> Result<(u64, u64)> {
    let size = imagesize::blob_size(bytes).map_err(|e| Error::Damaged {
        stage: crate::error::Stage::Page(1),
        detail: format!("the picture's header cannot be read: {e}"),
    })?;
    let (w, h) = (size.width as u64, size.height as u64);
    check_pixels("this picture is", w, h, limits)?;
    Ok((w, h))
}

pub(crate) fn check_pixels(subject: &str, width: u64, height: u64, limits: &Limits) -> Result<()> {
    if width.saturating_mul(height) > limits.max_image_pixels {
        return Err(Error::ImageTooLarge {
            subject: subject.to_string(),
            width,
            height,
            max_megapixels: limits.max_image_pixels / 1_000_000,
        });
    }
    Ok(())
}

/// The deepest nesting of arrays and dictionaries a PDF may have. Real documents nest a few
/// levels (structure trees nest through references, not inline); 200 000 levels are built to
/// exhaust a recursive parser's stack.
pub const MAX_NESTING: usize = 256;

/// The deepest nesting of `[` arrays and `<<` dictionaries in a PDF's object syntax, skipping
/// comments, strings and stream data; stops counting once past `stop_at`. Iterative, so a
/// hostile file cannot exhaust the stack of the code that measures it.
pub fn pdf_nesting(bytes: &[u8], stop_at: usize) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut i = 0;
    let n = bytes.len();
    while i < n {
        match bytes[i] {
            b'%' => {
                while i < n && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'(' => {
                let mut parens = 0usize;
                while i < n {
                    match bytes[i] {
                        b'\\' => i += 1,
                        b'(' => parens += 1,
                        b')' => {
                            parens -= 1;
                            if parens == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'<' if bytes.get(i + 1) == Some(&b'<') => {
                depth += 1;
                i += 1;
            }
            b'<' => {
                while i < n && bytes[i] != b'>' {
                    i += 1;
                }
            }
            b'>' if bytes.get(i + 1) == Some(&b'>') => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b's' if bytes[i..].starts_with(b"stream")
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) =>
            {
                // Stream data is bytes, not syntax: go to its `endstream`.
                match bytes[i..].windows(9).position(|w| w == b"endstream") {
                    Some(end) => i += end + 8,
                    None => return deepest,
                }
            }
            _ => {}
        }
        deepest = deepest.max(depth);
        if deepest > stop_at {
            return deepest;
        }
        i += 1;
    }
    deepest
}

/// Longest name kept, in characters; the extension is kept when a name is cut.
const MAX_NAME_CHARS: usize = 120;

/// The name a document is shown and stored under: only its last path component, without
/// control characters or the Unicode controls that reorder text (so `evil\u{202E}fdp.exe`
/// cannot pose as `evilexe.pdf`), trimmed and cut to a sane length. Refuses a name that is
/// nothing once cleaned (`..`, `/`, only controls).
pub fn sanitize_name(name: &str) -> Result<String> {
    // Both separators: a name from a Windows browser may carry a full `C:\...` path.
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_or_invisible(c))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_string();
    if cleaned.is_empty() {
        return Err(Error::BadName {
            name: name.to_string(),
            why: "nothing is left of it once path parts and control characters are removed",
        });
    }
    if cleaned.chars().count() <= MAX_NAME_CHARS {
        return Ok(cleaned);
    }
    let ext: String = match cleaned.rfind('.') {
        Some(i) if cleaned.len() - i <= 10 => cleaned[i..].to_string(),
        _ => String::new(),
    };
    let keep = MAX_NAME_CHARS - ext.chars().count();
    Ok(cleaned.chars().take(keep).collect::<String>() + &ext)
}

/// The bidirectional formatting characters (embeddings, overrides, isolates, marks) and the
/// invisible ones that let a name read differently from what it is.
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
        | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, LRI, RLI, FSI, PDI
        | '\u{061C}' // Arabic letter mark
        | '\u{FEFF}' // zero-width no-break space
    )
}

/// How an upload must keep arriving: a slow-drip sender (a few bytes a second, holding a
/// connection and a worker open for hours) is cut off. The server feeds it every chunk it
/// receives ([`UploadPace::received`]) and asks it between chunks ([`UploadPace::check`]); the
/// caller's read timeout should be [`UploadPace::stall`], so a sender that sends nothing at
/// all is cut off too.
#[derive(Debug, Clone)]
pub struct UploadPace {
    started: Instant,
    last: Instant,
    received: u64,
    /// Bytes a second an upload must average once the grace period is over.
    pub min_bytes_per_second: u64,
    /// How long the average is not judged (a phone on a weak signal starts slowly).
    pub grace: Duration,
    /// The longest gap allowed between two chunks.
    pub stall: Duration,
}

impl UploadPace {
    /// An upload starting now: at least 4 KiB a second on average after 10 seconds, and never
    /// 30 seconds without a byte. A 64 MiB file then has about 4.5 hours, and a
    /// household's slowest phone link sends far faster than 4 KiB/s.
    pub fn start() -> Self {
        Self::start_at(Instant::now())
    }

    /// As [`UploadPace::start`], from a given instant (tests drive the clock).
    pub fn start_at(now: Instant) -> Self {
        UploadPace {
            started: now,
            last: now,
            received: 0,
            min_bytes_per_second: 4096,
            grace: Duration::from_secs(10),
            stall: Duration::from_secs(30),
        }
    }

    /// Records a chunk of `n` bytes arriving at `now`, then checks the pace.
    pub fn received(&mut self, n: u64, now: Instant) -> Result<()> {
        self.check(now)?;
        self.received += n;
        self.last = now;
        Ok(())
    }

    /// Whether the upload is still going fast enough at `now`.
    pub fn check(&self, now: Instant) -> Result<()> {
        let gap = now.saturating_duration_since(self.last);
        if gap > self.stall {
            return Err(Error::Stalled {
                seconds: gap.as_secs(),
            });
        }
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed > self.grace {
            let need = (elapsed.as_secs_f64() * self.min_bytes_per_second as f64) as u64;
            if self.received < need {
                return Err(Error::TooSlow {
                    received: human_bytes(self.received),
                    seconds: elapsed.as_secs(),
                    min_per_second: human_bytes(self.min_bytes_per_second),
                });
            }
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_reads_bytes_not_names() {
        assert_eq!(sniff(b"%PDF-1.7\n").unwrap(), Kind::Pdf);
        assert_eq!(sniff(b"\r\n\r\njunk%PDF-1.4\n").unwrap(), Kind::Pdf);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").unwrap(), Kind::Png);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]).unwrap(), Kind::Jpeg);
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").unwrap(), Kind::Webp);
        assert_eq!(sniff(b"MM\0*\0\0\0\x08").unwrap(), Kind::Tiff);
        let err = sniff(b"PK\x03\x04 zip").unwrap_err().to_string();
        assert!(err.contains("zip archive"), "{err}");
        let err = sniff(b"hello, I am a .pdf by name only")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plain text"), "{err}");
        assert!(matches!(sniff(b""), Err(Error::Empty)));
        // The header past the first kilobyte does not count.
        let mut late = vec![b' '; 2000];
        late.extend_from_slice(b"%PDF-1.4");
        assert!(sniff(&late).is_err());
    }

    #[test]
    fn nesting_is_measured_outside_strings_and_streams() {
        assert_eq!(
            pdf_nesting(b"1 0 obj << /A [1 [2] << /B 3 >>] >> endobj", 100),
            3
        );
        assert_eq!(pdf_nesting(b"<< /T ([[[[\\)[[[) >>", 100), 1);
        assert_eq!(pdf_nesting(b"% [[[[[[\n[ ]", 100), 1);
        assert_eq!(
            pdf_nesting(b"<< /Length 4 >>\nstream\n[[[[\nendstream [", 100),
            1
        );
        assert_eq!(pdf_nesting(b"<</Hex <5b5b5b>>>", 100), 1);
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(pdf_nesting(deep.as_bytes(), MAX_NESTING), MAX_NESTING + 1);
    }

    #[test]
    fn names_lose_paths_and_reordering_controls() {
        assert_eq!(sanitize_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(sanitize_name("C:\\Users\\a\\bill.pdf").unwrap(), "bill.pdf");
        assert_eq!(
            sanitize_name("invoice\u{202E}fdp.exe").unwrap(),
            "invoicefdp.exe"
        );
        assert_eq!(
            sanitize_name("a\u{2066}b\u{200F}c\n.pdf").unwrap(),
            "abc.pdf"
        );
        assert_eq!(sanitize_name(".hidden").unwrap(), "hidden");
        assert!(sanitize_name("..").is_err());
        assert!(sanitize_name("dir/").is_err());
        assert!(sanitize_name("\u{202E}").is_err());
        let long = format!("{}.pdf", "x".repeat(500));
        let cut = sanitize_name(&long).unwrap();
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(".pdf"));
        // Right-to-left text itself is kept: only the invisible controls go.
        assert_eq!(sanitize_name("فاتورة.pdf").unwrap(), "فاتورة.pdf");
    }

    #[test]
    fn size_cap_and_pixel_cap() {
        let limits = Limits::default();
        assert!(check_size(1, &limits).is_ok());
        let err = check_size(limits.max_bytes + 1, &limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than the 67.1 MB Hearth reads"), "{err}");
        assert!(matches!(check_size(0, &limits), Err(Error::Empty)));
    }

    #[test]
    fn slow_drip_is_cut_off() {
        let t0 = Instant::now();
        let mut pace = UploadPace::start_at(t0);
        // A fast start is fine, and so is a slow one inside the grace period.
        pace.received(10, t0 + Duration::from_secs(5)).unwrap();
        // After the grace period a trickle is refused.
        let err = pace
            .received(10, t0 + Duration::from_secs(20))
            .unwrap_err()
            .to_string();
        assert!(err.contains("too slow"), "{err}");
        // A healthy upload passes.
        let mut pace = UploadPace::start_at(t0);
        for s in 1..=60 {
            pace.received(100_000, t0 + Duration::from_secs(s)).unwrap();
        }
        // Silence longer than the stall window is refused even with a good average.
        let err = pace
            .check(t0 + Duration::from_secs(95))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stalled"), "{err}");
    }
}
