//! Real pages that nobody here wrote, read end to end: page 1 of two PDFs from pdfminer.six's
//! sample set, rendered at 300 dpi, scored against the reference texts its maintainers ship
//! with them (`scripts/fetch-ocr-pages` fetches and pins them; the networks come from the
//! `rapidocr` wheel through `hearth_ocr::test_models`).
//!
//! The thresholds were measured once (figures in BENCHMARKS.md) and sit a little under them.
//! They were measured on pdftoppm 22.12.0's renders, which the script pins by sha256: the same
//! poppler renders the same bytes. Another poppler only warns there, because these tests score
//! words, not pixels: a renderer that anti-aliases glyph edges a little differently moves a
//! word's confidence, rarely the word, and the margins under the measured figures absorb that.

use std::path::PathBuf;
use std::sync::OnceLock;

use hearth_ocr::score::{ordered_wer, word_f1};
use hearth_ocr::{decode_image, Ocr, Options, Page, DEFAULT_MAX_PIXELS};

fn pages_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/fetch-ocr-pages"))
            .current_dir(&root)
            .output()
            .expect("running scripts/fetch-ocr-pages");
        assert!(
            out.status.success(),
            "scripts/fetch-ocr-pages failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("the script prints the directory"),
        )
    })
    .clone()
}

fn ocr() -> &'static Ocr {
    static OCR: OnceLock<Ocr> = OnceLock::new();
    OCR.get_or_init(|| {
        let dir = hearth_ocr::test_models().expect("fetching the OCR networks");
        // One thread, as the worker runs a page; the two tests share the two CI cores.
        let opts = Options {
            threads: Some(1),
            ..Default::default()
        };
        Ocr::load_with(&dir, opts).expect("loading the OCR networks")
    })
}

fn read(name: &str) -> (Page, String) {
    let dir = pages_dir();
    let bytes = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
    let reference = std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap();
    let img = decode_image(&bytes, DEFAULT_MAX_PIXELS).unwrap();
    (ocr().read_image(&img).unwrap(), reference)
}

#[test]
fn a_one_column_page_reads_its_words() {
    let (page, reference) = read("dmca");
    let f1 = word_f1(&reference, &page.text_in_reading_order);
    let wer = ordered_wer(&reference, &page.text_in_reading_order);
    eprintln!("dmca: word F1 {f1:.4}, ordered WER {wer:.4}");
    assert!(
        f1 >= 0.90,
        "word F1 {f1:.4}:\n{}",
        page.text_in_reading_order
    );
    assert_eq!(page.rotation, 0);
    assert!(!page.cut_off);
    assert!(page
        .lines
        .iter()
        .all(|l| l.confidence >= 0.5 && !l.text.is_empty()));
}

#[test]
fn a_two_column_page_reads_column_by_column() {
    let (page, reference) = read("naacl06-shinyama");
    let text = &page.text_in_reading_order;
    let f1 = word_f1(&reference, text);
    let wer = ordered_wer(&reference, text);
    eprintln!("naacl06: word F1 {f1:.4}, ordered WER {wer:.4}");
    assert!(f1 >= 0.95, "word F1 {f1:.4}:\n{text}");
    assert!(wer <= 0.03, "ordered WER {wer:.4}:\n{text}");
    assert!(!page.cut_off);
    // The left column's last line comes before the right column's first.
    let left_end = text.find("specify arti-").expect("left column's last line");
    let right_start = text
        .find("cles and adjust")
        .expect("right column's first line");
    assert!(left_end < right_start, "{text}");
}

#[test]
fn a_page_photographed_sideways_or_upside_down_reads_upright() {
    let dir = pages_dir();
    let bytes = std::fs::read(dir.join("dmca.png")).unwrap();
    let full = decode_image(&bytes, DEFAULT_MAX_PIXELS).unwrap();
    // The page's top third (title and first paragraph) keeps the test short.
    let top = image::imageops::crop_imm(&full, 0, 0, full.width(), full.height() / 3).to_image();
    let upright = ocr().read_image(&top).unwrap();
    assert_eq!(upright.rotation, 0);
    // Turned a quarter counter-clockwise (the camera held sideways), then upside down.
    for (turned, rotation) in [
        (image::imageops::rotate270(&top), 90),
        (image::imageops::rotate180(&top), 180),
    ] {
        let page = ocr().read_image(&turned).unwrap();
        let f1 = word_f1(&upright.text_in_reading_order, &page.text_in_reading_order);
        let wer = ordered_wer(&upright.text_in_reading_order, &page.text_in_reading_order);
        eprintln!("turned {rotation}: F1 {f1:.4} WER {wer:.4} against the upright read");
        assert_eq!(page.rotation, rotation, "{}", page.text_in_reading_order);
        assert!(f1 >= 0.95 && wer <= 0.1, "{}", page.text_in_reading_order);
    }
}
