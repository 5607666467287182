//! Reading a household's documents: PDFs (text per page, in logical order, through PDFium
//! bound at run time) and photos of paper, each page read in a separate worker process with
//! memory, CPU-time and wall-time limits, so a hostile file ends only its worker.
//!
//! Pages without a usable text layer are rendered and handed to OCR through [`PageOcr`]; this
//! crate does no OCR itself.

pub mod error;
pub mod library;
pub mod limits;
pub mod ocr;
pub mod reader;
pub mod worker;

pub use error::{Error, Result, Stage};
pub use limits::{sanitize_name, sniff, Kind, Limits, UploadPace};
pub use ocr::{OcrInput, PageImage, PageOcr, Source};
pub use reader::{Document, Page, Progress, Reader};
