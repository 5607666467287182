//! Getting the PP-OCR networks: the `rapidocr` wheel through pip, pinned by version and by each
//! network's sha256, extracted into the data directory the way Hearth fetches models.

use std::path::PathBuf;

use hearth_fetch::{pip, wheel, Home, PinnedFile, Progress};

use crate::Error;

/// The wheel that ships the networks.
pub const PACKAGE: &str = "rapidocr";
pub const VERSION: &str = "3.10.0";

/// The networks' file names inside the models directory.
pub const DET: &str = "det.onnx";
pub const REC: &str = "rec.onnx";
pub const CLS: &str = "cls.onnx";

/// (member in the wheel, name here, sha256, size)
const FILES: [(&str, &str, &str, u64); 3] = [
    (
        "rapidocr/models/PP-OCRv6_det_small.onnx",
        DET,
        "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
        9_929_594,
    ),
    (
        "rapidocr/models/PP-OCRv6_rec_small.onnx",
        REC,
        "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
        21_234_383,
    ),
    (
        "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        CLS,
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        585_532,
    ),
];

/// Where the networks live in a data directory.
pub fn models_dir(home: &Home) -> PathBuf {
    home.root().join("ocr").join(format!("{PACKAGE}-{VERSION}"))
}

fn pinned() -> Vec<PinnedFile> {
    FILES
        .iter()
        .map(|&(file, name, sha, size)| PinnedFile {
            file: file.to_string(),
            name: name.to_string(),
            sha256: sha.to_string(),
            size,
        })
        .collect()
}

/// Whether the directory holds every network at its pinned size (the hash was checked when
/// they were extracted).
fn complete(dir: &std::path::Path) -> bool {
    FILES.iter().all(|&(_, name, _, size)| {
        std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file() && m.len() == size)
    })
}

/// The models directory of `home`, fetched first if it is missing or incomplete.
pub fn ensure_models(home: &Home, progress: &dyn Progress) -> Result<PathBuf, Error> {
    let dir = models_dir(home);
    if complete(&dir) {
        return Ok(dir);
    }
    let tmp = home.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(|e| Error::Io(format!("creating {tmp:?}: {e}")))?;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Io(format!("creating {parent:?}: {e}")))?;
    }
    let staging = tempfile::Builder::new()
        .prefix("ocr-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::Io(format!("creating a staging directory in {tmp:?}: {e}")))?;
    let reqs = [pip::Requirement {
        package: PACKAGE.to_string(),
        version: VERSION.to_string(),
    }];
    let total: u64 = FILES.iter().map(|f| f.3).sum();
    let wheels = pip::download(
        &reqs,
        staging.path(),
        "the OCR networks",
        Some(total),
        progress,
    )?;
    let wheel = wheels
        .first()
        .ok_or_else(|| Error::Io("pip returned no wheel".into()))?;
    wheel::extract_files(wheel, &pinned(), &dir, "OCR networks", progress)?;
    Ok(dir)
}

/// For tests: the networks, fetched once into the shared test cache (`$HEARTH_TEST_HOME` if set,
/// else the normal data directory), as `hearth_fetch::test_model` does for models.
pub fn test_models() -> Result<PathBuf, Error> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let home = match std::env::var_os("HEARTH_TEST_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => Home::at(dir),
        None => Home::from_env()?,
    };
    ensure_models(&home, &hearth_fetch::Lines)
}
