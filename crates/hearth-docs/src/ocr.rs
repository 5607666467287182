//! The seam OCR plugs into. This crate never recognises text itself: a page without a usable
//! text layer is rendered (PDFs) or passed as it came (photos) and handed to a [`PageOcr`] if
//! the caller has one; without one the page is reported as needing OCR.

use crate::limits::Kind;

/// A PDF page rendered for OCR: 8-bit gray, row-major, `width` bytes a row, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct PageImage {
    pub width: u32,
    pub height: u32,
    /// The resolution it was rendered at (lower than asked when the pixel cap scaled it down).
    pub dpi: u32,
    pub gray: Vec<u8>,
}

impl std::fmt::Debug for PageImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PageImage({} × {} at {} dpi)",
            self.width, self.height, self.dpi
        )
    }
}

/// What OCR is given for one page.
#[derive(Debug, Clone)]
pub enum OcrInput {
    /// A PDF page rendered by PDFium.
    Rendered(PageImage),
    /// An uploaded picture, as its bytes: OCR decodes it (and honours its EXIF orientation).
    /// Its header has already passed the pixel cap.
    Photo { kind: Kind, bytes: Vec<u8> },
}

/// A text recogniser. `Err` is a plain reason, shown with the page number.
pub trait PageOcr {
    fn recognize(&self, input: &OcrInput) -> Result<String, String>;
}

/// Where a page's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The PDF's own text layer.
    TextLayer,
    /// No usable text layer, and no OCR was run: the text (if any) is what the layer had.
    NeedsOcr,
    /// Recognised by OCR.
    Ocr,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::TextLayer => "text layer",
            Source::NeedsOcr => "needs OCR",
            Source::Ocr => "OCR",
        }
    }
}
