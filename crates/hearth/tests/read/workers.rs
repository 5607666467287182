//! The reading pipeline as the server will call it: a `Reader` over this `hearth` binary's
//! worker mode, with limits tightened so the CPU-time and wall-clock limits are reached by a
//! real worker on a real page, and the OCR seam handed a real rendering.

use std::path::Path;

use hearth_docs::{Error, Limits, OcrInput, PageOcr, Reader, Source, Stage};

use crate::pdf;

fn reader(limits: Limits) -> Reader {
    Reader {
        program: env!("CARGO_BIN_EXE_hearth").into(),
        args: vec!["__docs-worker".into()],
        library: crate::pdfium(),
        limits,
    }
}

/// A page with no text that costs a great deal of CPU to draw: thousands of full-page fills.
fn slow_page(dir: &Path) -> std::path::PathBuf {
    let fills = "0.5 g 0 0 612 792 re f 1 g 0 0 612 792 re f\n".repeat(20_000);
    let doc = pdf::with_pages(&[fills.into_bytes()]);
    crate::write(dir, "slow.pdf", &doc.bytes())
}

#[test]
fn a_page_past_its_cpu_time_ends_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = slow_page(dir.path());
    let limits = Limits {
        worker_cpu_seconds: 1,
        // Far more than a CPU-second takes on a loaded machine: the CPU limit is what ends it.
        worker_wall_seconds: 600,
        ..Limits::default()
    };
    let err = reader(limits)
        .read_file(&path, None, None, &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CpuTime {
                stage: Stage::Page(1),
                seconds: 1
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "this PDF needs more computing time than allowed to read page 1 (the limit is 1 CPU-seconds)"
    );
}

#[test]
fn a_page_past_its_wall_time_ends_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = slow_page(dir.path());
    let limits = Limits {
        worker_wall_seconds: 0,
        ..Limits::default()
    };
    let err = reader(limits)
        .read_file(&path, None, None, &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WallTime {
                stage: Stage::Open,
                ..
            }
        ),
        "{err}"
    );
}

/// Looks at what OCR is handed: the page drawn in gray, a black box where the PDF put it.
struct Probe;

impl PageOcr for Probe {
    fn recognize(&self, input: &OcrInput) -> Result<String, String> {
        let OcrInput::Rendered(image) = input else {
            return Err("expected a rendered page".into());
        };
        let at = |x: u32, y: u32| image.gray[(y * image.width + x) as usize];
        // The box spans 100..300 pt across and 392..692 pt down from the top; at 300 dpi a
        // point is 300/72 pixels.
        let px = |pt: f64| (pt * 300.0 / 72.0) as u32;
        Ok(format!(
            "{}x{} at {} dpi; inside {}; outside {}",
            image.width,
            image.height,
            image.dpi,
            at(px(200.0), px(542.0)),
            at(px(50.0), px(50.0))
        ))
    }
}

#[test]
fn a_page_without_text_reaches_ocr_as_its_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::write(
        dir.path(),
        "scan.pdf",
        &pdf::with_pages(&[b"0 g 100 100 200 300 re f\n".to_vec()]).bytes(),
    );
    let mut seen = Vec::new();
    let doc = reader(Limits::default())
        .read_file(&path, None, Some(&Probe), &mut |p| seen.push(p))
        .unwrap();
    assert_eq!(doc.pages.len(), 1);
    assert_eq!(doc.pages[0].source, Source::Ocr);
    assert_eq!(
        doc.pages[0].text,
        "2550x3300 at 300 dpi; inside 0; outside 255"
    );
    assert_eq!(
        seen,
        vec![
            hearth_docs::Progress::Opening,
            hearth_docs::Progress::Page {
                page: 1,
                of: 1,
                ocr: false
            },
            hearth_docs::Progress::Page {
                page: 1,
                of: 1,
                ocr: true
            },
        ]
    );
}

/// A document whose pages add up past the text cap is refused in words naming where it
/// stopped, not held whole in the caller.
#[test]
fn text_past_the_documents_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let line = "The quick brown fox jumps over the lazy dog, again and again.";
    let path = crate::write(
        dir.path(),
        "long.pdf",
        &pdf::text_pdf(&[&[line, line], &[line, line], &[line, line]]),
    );
    let limits = Limits {
        max_text_bytes: 200,
        ..Limits::default()
    };
    let err = reader(limits)
        .read_file(&path, None, None, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::TextTooLarge { page: 2, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "this document has more than 200 B of text; Hearth keeps at most that much of one document, so it stopped at page 2"
    );
    let one_page = Limits {
        max_page_text_bytes: 50,
        ..Limits::default()
    };
    let err = reader(one_page)
        .read_file(&path, None, None, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::TextTooLarge { page: 1, .. }), "{err}");
}

/// Each page's own limits are generous here (the CPU limit cannot win); the document's budget
/// is what ends the slow page.
#[test]
fn a_document_past_its_time_budget_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = slow_page(dir.path());
    let limits = Limits {
        worker_cpu_seconds: 600,
        worker_wall_seconds: 600,
        document_wall_seconds: 1,
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let err = reader(limits)
        .read_file(&path, None, None, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::DocumentTime { .. }), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}

#[test]
fn a_password_longer_than_any_pdf_allows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::write(dir.path(), "a.pdf", &pdf::text_pdf(&[&["hello"]]));
    let long = "x".repeat(200_000);
    let err = reader(Limits::default())
        .read_file(&path, Some(&long), None, &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(err, Error::PasswordTooLong { len: 200_000, .. }),
        "{err}"
    );
}

/// The worker starts with an empty environment: `env` in its place prints nothing, so the
/// reader finds no answer at all (with the caller's environment it would print lines that are
/// not an answer).
#[test]
fn the_worker_gets_no_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::write(dir.path(), "a.pdf", &pdf::text_pdf(&[&["hello"]]));
    let reader = Reader {
        program: "/usr/bin/env".into(),
        args: vec![],
        library: crate::pdfium(),
        limits: Limits::default(),
    };
    let err = reader
        .read_file(&path, None, None, &mut |_| {})
        .unwrap_err();
    match err {
        Error::Protocol { detail, .. } => assert_eq!(detail, "no answer"),
        other => panic!("{other}"),
    }
}

/// A pipe is refused at once, not waited on for a writer.
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("doc.pdf");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = reader(Limits::default())
        .read_file(&fifo, None, None, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::NotAFile { .. }), "{err}");
}
