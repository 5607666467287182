//! `hearth read FILE`: a document's text as Hearth reads it for the household, page by page in
//! reading order, each page saying whether its text came from the PDF's text layer or needs
//! (or used) OCR. The same pipeline uploads go through: limits first, then each page in a
//! worker process of its own (`hearth __docs-worker`, hidden).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hearth_docs::{Document, Error as DocError, Limits, Progress, Reader, Source};
use hearth_fetch::Home;

/// The hidden subcommand a worker is started with.
pub const WORKER_COMMAND: &str = "__docs-worker";

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// The PDF or picture (PNG, JPEG, WebP, TIFF) to read.
    pub file: PathBuf,
    /// Print the pages as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The password of a locked PDF.
    #[arg(long)]
    pub password: Option<String>,
}

pub fn run(a: ReadArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let progress = crate::cmd::pull::progress();
    let library = hearth_docs::library::ensure(&home, &progress)
        .context("getting the PDF library (PDFium)")?;
    let reader = Reader {
        program: std::env::current_exe().context("finding this program to start its workers")?,
        args: vec![WORKER_COMMAND.into()],
        library,
        limits: Limits::default(),
    };
    let shown = hearth_docs::sanitize_name(&a.file.to_string_lossy())
        .unwrap_or_else(|_| a.file.display().to_string());
    let interactive = std::io::stderr().is_terminal();
    let mut on_progress = |p: Progress| {
        if !interactive {
            return;
        }
        let line = match p {
            Progress::Opening => format!("opening {shown}"),
            Progress::Page { page, of, ocr } => {
                let what = if ocr { "reading scan" } else { "reading" };
                format!("page {page} of {of}, {what}")
            }
        };
        eprint!("\r\x1b[2K{line}");
    };
    let result = reader.read_file(&a.file, a.password.as_deref(), None, &mut on_progress);
    if interactive {
        eprint!("\r\x1b[2K");
    }
    let doc = match result {
        Ok(doc) => doc,
        Err(DocError::PasswordNeeded) => {
            anyhow::bail!(
                "{shown}: {}; give it with --password",
                DocError::PasswordNeeded
            )
        }
        Err(e) => anyhow::bail!("{shown}: {e}"),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let value = serde_json::json!({
            "file": shown,
            "kind": doc.kind,
            "pages": doc.pages,
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &doc)?;
    }
    out.flush()?;
    Ok(())
}

fn print_text(out: &mut impl Write, doc: &Document) -> std::io::Result<()> {
    for page in &doc.pages {
        let source = match (page.source, page.image) {
            (Source::NeedsOcr, Some(img)) => format!(
                "needs OCR: no usable text layer ({} × {} pixels{})",
                img.width,
                img.height,
                img.dpi.map(|d| format!(" at {d} dpi")).unwrap_or_default()
            ),
            (s, _) => s.describe().to_string(),
        };
        writeln!(out, "--- page {} --- {source}", page.page)?;
        let text = page.text.trim_end();
        if !text.is_empty() {
            writeln!(out, "{text}")?;
        }
    }
    Ok(())
}

/// The worker mode: reads one request on stdin and answers on stdout.
pub fn worker() -> std::process::ExitCode {
    std::process::ExitCode::from(hearth_docs::worker::main() as u8)
}
