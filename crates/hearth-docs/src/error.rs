//! What can go wrong reading a document, in words a person filing a school form understands.

use std::path::PathBuf;

/// Where in a document something went wrong: opening it, or reading one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Opening the file and counting its pages.
    Open,
    /// Reading one page (1-based).
    Page(u32),
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Open => f.write_str("open it"),
            Stage::Page(n) => write!(f, "read page {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this file is {size}, more than the {max} Hearth reads")]
    TooLarge { size: String, max: String },
    #[error("this file is empty")]
    Empty,
    #[error("this is not a PDF or a picture Hearth can read ({found}); the name's extension does not matter, only what the file holds")]
    UnsupportedType { found: String },
    #[error("this PDF has {pages} pages; Hearth reads at most {max}")]
    TooManyPages { pages: u64, max: u32 },
    #[error("this PDF has no pages")]
    NoPages,
    #[error("{subject} {width} × {height} pixels, more than the {max_megapixels} megapixels Hearth decodes")]
    ImageTooLarge {
        /// "this picture is" or "page N has a picture of".
        subject: String,
        width: u64,
        height: u64,
        max_megapixels: u64,
    },
    #[error("this PDF nests its structure more than {max} levels deep, which real documents never do; it is refused as built to crash readers")]
    TooDeep { max: usize },
    #[error("this PDF is locked with a password; give its password to read it")]
    PasswordNeeded,
    #[error("the password does not open this PDF")]
    WrongPassword,
    #[error("this PDF is damaged or not really a PDF, so Hearth could not {stage}{}", detail_suffix(.detail))]
    Damaged { stage: Stage, detail: String },
    #[error("this PDF needs more memory than allowed to {stage} (the limit is {limit})")]
    OutOfMemory { stage: Stage, limit: String },
    #[error("this PDF needs more computing time than allowed to {stage} (the limit is {seconds} CPU-seconds)")]
    CpuTime { stage: Stage, seconds: u64 },
    #[error("this PDF took longer than allowed to {stage} (the limit is {seconds} seconds)")]
    WallTime { stage: Stage, seconds: u64 },
    #[error("the PDF reader stopped while trying to {stage} ({detail}); the file is probably damaged or built to attack readers")]
    Crashed { stage: Stage, detail: String },
    #[error("this document has more than {max} of text; Hearth keeps at most that much of one document, so it stopped at page {page}")]
    TextTooLarge { page: u32, max: String },
    #[error("this document took longer than the {seconds} seconds Hearth spends on one document; it stopped before page {page}")]
    DocumentTime { page: u32, seconds: u64 },
    #[error("this password is {len} bytes long, longer than any PDF password ({max} at most)")]
    PasswordTooLong { len: usize, max: usize },
    #[error("{} is not a regular file (a folder, a pipe or a device), so Hearth does not read it", .path.display())]
    NotAFile { path: PathBuf },
    #[error("the PDF reader's answer was too long while trying to {stage}")]
    ReplyTooLarge { stage: Stage },
    #[error("the PDF library could not be loaded from {path}: {detail}")]
    Library { path: PathBuf, detail: String },
    #[error("could not start the document reader ({program}): {detail}")]
    Spawn { program: PathBuf, detail: String },
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the file name {name:?} cannot be used: {why}")]
    BadName { name: String, why: &'static str },
    #[error("the upload was too slow: {received} arrived in {seconds} seconds, less than {min_per_second} a second")]
    TooSlow {
        received: String,
        seconds: u64,
        min_per_second: String,
    },
    #[error("the upload stalled: nothing arrived for {seconds} seconds")]
    Stalled { seconds: u64 },
    #[error("fetching the PDF library: {0}")]
    Fetch(#[from] hearth_fetch::Error),
    #[error("the document reader answered something Hearth does not understand while trying to {stage}: {detail}")]
    Protocol { stage: Stage, detail: String },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
