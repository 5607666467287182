//! Reads page images and prints their text in reading order, or scores a text against a
//! reference. `scripts/bench-ocr` runs it beside Tesseract.
//!
//! ```text
//! ocr-page [--threads N] [--models DIR] [--boxes] IMAGE...
//! ocr-page --score REFERENCE.txt TEXT.txt      (prints: word-F1 ordered-WER)
//! ocr-page --print-models                       (fetches the networks, prints their directory)
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocr-page: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut threads = None;
    let mut models: Option<PathBuf> = None;
    let mut images = Vec::new();
    let mut boxes = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--score" => {
                let (r, h) = (args.next(), args.next());
                let (Some(r), Some(h)) = (r, h) else {
                    return Err("--score takes REFERENCE and TEXT".into());
                };
                let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
                let (r, h) = (read(&r)?, read(&h)?);
                println!(
                    "{:.4} {:.4}",
                    hearth_ocr::score::word_f1(&r, &h),
                    hearth_ocr::score::ordered_wer(&r, &h)
                );
                return Ok(());
            }
            "--threads" => {
                let n = args.next().ok_or("--threads takes a number")?;
                threads = Some(n.parse::<usize>().map_err(|e| format!("--threads: {e}"))?);
            }
            "--boxes" => boxes = true,
            "--print-models" => {
                let dir = hearth_ocr::test_models().map_err(|e| e.to_string())?;
                println!("{}", dir.display());
                return Ok(());
            }
            "--models" => models = Some(args.next().ok_or("--models takes a directory")?.into()),
            _ => images.push(a),
        }
    }
    if images.is_empty() {
        return Err("no image given".into());
    }
    let dir = match models {
        Some(d) => d,
        None => hearth_ocr::test_models().map_err(|e| e.to_string())?,
    };
    let opts = hearth_ocr::Options {
        threads,
        ..Default::default()
    };
    let ocr = hearth_ocr::Ocr::load_with(&dir, opts).map_err(|e| e.to_string())?;
    for path in images {
        let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let img = hearth_ocr::decode_image(&bytes, hearth_ocr::DEFAULT_MAX_PIXELS)
            .map_err(|e| format!("{path}: {e}"))?;
        let page = ocr.read_image(&img).map_err(|e| format!("{path}: {e}"))?;
        if boxes {
            for l in &page.lines {
                let b = l.bbox;
                println!(
                    "{:5.0} {:5.0} {:5.0} {:5.0} {:.2} {}",
                    b.x0, b.y0, b.x1, b.y1, l.confidence, l.text
                );
            }
        } else {
            print!("{}", page.text_in_reading_order);
        }
    }
    Ok(())
}
