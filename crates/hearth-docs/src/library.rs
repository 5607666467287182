//! PDFium itself: the `libpdfium.so` that the `pypdfium2` wheel ships, fetched like a model
//! (pip, pinned by sha256) into the data directory and bound at run time.

use std::path::PathBuf;

use hearth_fetch::{pip, wheel, Home, Progress};

use crate::error::{Error, Result};

/// One pinned build of the library inside one wheel.
#[derive(Debug, Clone, Copy)]
pub struct PdfiumPin {
    pub package: &'static str,
    pub version: &'static str,
    /// PDFium's own build number (chromium/NNNN), part of the directory it is kept in.
    pub build: u32,
    /// The path inside the wheel.
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

/// The pin for this platform: pip picks the wheel matching the machine, so each architecture
/// has its own digest.
pub fn pin() -> Option<PdfiumPin> {
    let base = |sha256, size| PdfiumPin {
        package: "pypdfium2",
        version: "5.15.2",
        build: 8149,
        file: "pypdfium2_raw/libpdfium.so",
        sha256,
        size,
    };
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        Some(base(
            "c76dc0f7839644bfa7c3e3107a6068df714e339c861bb7d4519907b821d427f9",
            8_271_176,
        ))
    } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        Some(base(
            "4378615ad9710397c96c112611be9018629bbfe38805d91a2663a534b99c28ca",
            8_308_952,
        ))
    } else {
        None
    }
}

/// `$HEARTH_PDFIUM`: a PDFium library the keeper provides instead (a platform without a pin,
/// or a distribution's own build).
pub const OVERRIDE_VAR: &str = "HEARTH_PDFIUM";

/// The library's path, fetched into `home` on first use (the wheel through pip, the one file
/// taken out of it and sha256-checked; nothing is left behind on failure).
pub fn ensure(home: &Home, progress: &dyn Progress) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(OVERRIDE_VAR).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let pin = pin().ok_or_else(|| Error::Library {
        path: PathBuf::from("libpdfium"),
        detail: format!(
            "no PDFium build is pinned for this platform; set {OVERRIDE_VAR} to a libpdfium you trust"
        ),
    })?;
    let dir = home
        .root()
        .join("lib")
        .join(format!("pdfium-{}", pin.build));
    let dest = dir.join("libpdfium.so");
    if dest.is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating directory", &dir, e))?;
    let tmp = home.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("creating directory", &tmp, e))?;
    let staging = tempfile::Builder::new()
        .prefix("pdfium-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::io("creating a directory in", &tmp, e))?;
    let reqs = [pip::Requirement {
        package: pin.package.to_string(),
        version: pin.version.to_string(),
    }];
    let wheels = pip::download(&reqs, staging.path(), "PDFium", Some(pin.size), progress)?;
    let member = wheel::Member {
        wheel: wheels[0].clone(),
        file: pin.file.to_string(),
    };
    let joined = staging.path().join("libpdfium.so");
    wheel::join_members(
        &[member],
        &joined,
        "libpdfium.so",
        Some(pin.sha256),
        Some(pin.size),
        progress,
    )?;
    std::fs::rename(&joined, &dest).map_err(|e| Error::io("renaming", &joined, e))?;
    Ok(dest)
}

/// For tests across the workspace: the library, fetched once into the shared test cache
/// (`$HEARTH_TEST_HOME`, else the normal data directory) through the same code as [`ensure`].
pub fn test_library() -> Result<PathBuf> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let home = match std::env::var_os("HEARTH_TEST_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => Home::at(dir),
        None => Home::from_env()?,
    };
    ensure(&home, &hearth_fetch::Lines)
}
