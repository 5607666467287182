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
    /// Most text kept from one document, in bytes of UTF-8: the caller (later the server) holds
    /// every page's text, so 2000 pages of a few megabytes each must not all come back.
    #[serde(default = "default_max_text_bytes")]
    pub max_text_bytes: u64,
    /// Most text kept from one page, in bytes of UTF-8.
    #[serde(default = "default_max_page_text_bytes")]
    pub max_page_text_bytes: u64,
    /// Wall-clock seconds for the whole document: every page worker's deadline is the smaller
    /// of its own and what is left of this, so 2000 slow pages cannot hold a reader for a day.
    #[serde(default = "default_document_wall_seconds")]
    pub document_wall_seconds: u64,
}

fn default_max_text_bytes() -> u64 {
    16 << 20
}

fn default_max_page_text_bytes() -> u64 {
    4 << 20
}

fn default_document_wall_seconds() -> u64 {
    600
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
            max_text_bytes: default_max_text_bytes(),
            max_page_text_bytes: default_max_page_text_bytes(),
            document_wall_seconds: default_document_wall_seconds(),
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
    // The magic at offset 0 decides first: a picture with `%PDF-` in an early chunk (a
    // polyglot) is a picture, and must pass the picture checks.
    if head.starts_with(b"%PDF-") {
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
    // Leading junk before the PDF header is accepted only when the head is no other known
    // format and not markup (an HTML page quoting `%PDF-` is not a PDF).
    let window = &head[..head.len().min(PDF_HEADER_WINDOW)];
    if !is_other_known(head) && window.windows(5).any(|w| w == b"%PDF-") {
        return Ok(Kind::Pdf);
    }
    Err(Error::UnsupportedType {
        found: describe(head),
    })
}

fn is_other_known(head: &[u8]) -> bool {
    let text = head.trim_ascii_start();
    KNOWN.iter().any(|(magic, _)| head.starts_with(magic)) || text.starts_with(b"<")
}

/// Formats Hearth does not read, by their magic, for the refusal's words.
const KNOWN: [(&[u8], &str); 8] = [
    (b"PK\x03\x04", "a zip archive or an Office document"),
    (b"GIF8", "a GIF picture"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<", "HTML or XML text"),
];

/// A few words on what an unreadable file seems to be, for the refusal.
fn describe(head: &[u8]) -> String {
    for (magic, what) in KNOWN {
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
    if w == 0 || h == 0 {
        return Err(Error::Damaged {
            stage: crate::error::Stage::Page(1),
            detail: "the picture's header gives it no width or height".into(),
        });
    }
    check_pixels("this picture is", w, h, limits)?;
    Ok((w, h))
}

/// A zero width or height is not a small picture but an unknown one (a JPEG may set its height
/// later, in a DNL marker, up to 65535), so it is refused like one too large to decode.
pub(crate) fn check_pixels(subject: &str, width: u64, height: u64, limits: &Limits) -> Result<()> {
    if width == 0 || height == 0 || width.saturating_mul(height) > limits.max_image_pixels {
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

/// The characters that let a name read differently from what it is: every invisible format
/// character (Unicode's Cf category: bidi embeddings, overrides, isolates and marks, zero-width
/// joiners, the soft hyphen, the tag characters), the line and paragraph separators, and the
/// invisible fillers and selectors that are not Cf but draw nothing.
pub(crate) fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c,
        // Cf, as of Unicode 15.1.
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        // The whole tags block (U+E0001, U+E0020-E007F, the rest unassigned).
        | '\u{E0000}'..='\u{E007F}'
        // Zl and Zp: a name must stay on one line.
        | '\u{2028}'..='\u{2029}'
        // Invisible but not Cf: combining grapheme joiner, variation selectors, Hangul fillers.
        | '\u{034F}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{E0100}'..='\u{E01EF}'
        | '\u{115F}'..='\u{1160}'
        | '\u{3164}'
        | '\u{FFA0}'
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

#[cfg(test)]
mod review_tests {
    use super::*;

    #[test]
    fn the_first_bytes_decide_over_a_later_pdf_header() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(b"\0\0\0\x0dtEXt%PDF-1.7 polyglot");
        assert_eq!(sniff(&png).unwrap(), Kind::Png);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.extend_from_slice(b"%PDF-1.4");
        assert_eq!(sniff(&jpeg).unwrap(), Kind::Jpeg);
        assert!(sniff(b"<html><!-- %PDF-1.4 --></html>").is_err());
        // Junk before the header is still accepted when nothing else matches.
        assert_eq!(
            sniff(b"From mail gateway\r\n%PDF-1.4\n").unwrap(),
            Kind::Pdf
        );
        let mut late = vec![b' '; PDF_HEADER_WINDOW];
        late.extend_from_slice(b"%PDF-1.4");
        assert!(sniff(&late).is_err());
    }

    #[test]
    fn names_lose_every_invisible_format_character() {
        for c in [
            '\u{2028}',
            '\u{2029}',
            '\u{00AD}',
            '\u{180E}',
            '\u{034F}',
            '\u{FE0F}',
            '\u{FFF9}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{115F}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{0600}',
            '\u{1D173}',
            '\u{206A}',
        ] {
            let name = format!("re{c}port.pdf");
            assert_eq!(
                sanitize_name(&name).unwrap(),
                "report.pdf",
                "{:X}",
                c as u32
            );
        }
        assert_eq!(sanitize_name("Zoë 日本.pdf").unwrap(), "Zoë 日本.pdf");
    }

    #[test]
    fn a_zero_dimension_is_not_a_small_picture() {
        let limits = Limits::default();
        assert!(check_pixels("this picture is", 0, 65535, &limits).is_err());
        assert!(check_pixels("this picture is", 65535, 0, &limits).is_err());
        assert!(check_pixels("this picture is", 10, 10, &limits).is_ok());
    }
}
