//! Replays `tests/corpus/` (valid writer-made files and invalid ones, including inputs the fuzzer
//! found) through both parsers. Errors are fine; panics and inconsistencies are not.
//!
//! Files are named `.bin`, not `.gguf`: many are not valid GGUF, and the repository ignores
//! `*.gguf` so that model files are never committed.
//!
//! `cargo test --release -p hearth-gguf -- --ignored write_corpus` regenerates the hand-made part.

use std::path::PathBuf;

use hearth_gguf::Gguf;

use super::errors::invalid_cases;
use super::fuzz::check_no_panic;
use super::roundtrip::small_model;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[test]
fn corpus_replays_without_panic() {
    let mut n = 0;
    let mut valid = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("tests/corpus exists") {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        check_no_panic(&bytes);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ok = Gguf::from_bytes(bytes).is_ok();
        if name.starts_with("valid_") {
            assert!(ok, "{name} should parse");
            valid += 1;
        }
        if name.starts_with("invalid_") {
            assert!(!ok, "{name} should be refused");
        }
        n += 1;
    }
    assert!(
        n >= 30 && valid >= 3,
        "corpus looks incomplete: {n} files, {valid} valid"
    );
}

#[test]
#[ignore = "writes tests/corpus; run by hand after changing the cases"]
fn write_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let valid = [
        ("valid_v3", small_model(3, None).to_bytes()),
        ("valid_v2", small_model(2, None).to_bytes()),
        ("valid_align64", small_model(3, Some(64)).to_bytes()),
        (
            "valid_empty",
            hearth_gguf::write::GgufWriter::new().to_bytes(),
        ),
    ];
    for (name, bytes) in valid {
        std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
    }
    for (name, bytes) in invalid_cases() {
        std::fs::write(dir.join(format!("invalid_{name}.bin")), bytes).unwrap();
    }
}
