//! Where Hearth keeps its data: `$HEARTH_HOME`, else `$XDG_DATA_HOME/hearth`, else
//! `~/.local/share/hearth`. Models live in `<home>/models/`, temporary downloads in
//! `<home>/tmp/` so that the final rename never crosses a filesystem. `serve.pid` marks the
//! directory as held by one process (see [`Home::lock`]).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Hearth's data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The data directory chosen by the environment (see the module docs). Nothing is created.
    pub fn from_env() -> Result<Home> {
        let var = |key: &str| {
            std::env::var_os(key)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(root) = var("HEARTH_HOME") {
            return Ok(Home::at(root));
        }
        if let Some(data) = var("XDG_DATA_HOME") {
            return Ok(Home::at(data.join("hearth")));
        }
        if let Some(home) = var("HOME") {
            return Ok(Home::at(home.join(".local").join("share").join("hearth")));
        }
        // Windows has no HOME by default; its per-user data folder plays the same role.
        if let Some(appdata) = var("APPDATA") {
            return Ok(Home::at(appdata.join("hearth")));
        }
        Err(Error::NoHome)
    }

    /// A data directory at an explicit path (tests, `--home`).
    pub fn at(path: impl Into<PathBuf>) -> Home {
        Home { root: path.into() }
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where model files and `index.json` live.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Where downloads are staged; on the same filesystem as [`Home::models_dir`].
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The keeper's own catalog, merged over the built-in one when present.
    pub fn user_catalog_path(&self) -> PathBuf {
        self.root.join("catalog.toml")
    }

    /// The file [`Home::lock`] locks.
    pub fn lock_path(&self) -> PathBuf {
        // Not `hearth.lock`: that name is kept for the models lockfile (issue 16).
        self.root.join("serve.pid")
    }

    /// Takes the data directory for this process until the returned value is dropped, or
    /// refuses at once, naming the process that has it: "another Hearth (pid 1234, `hearth
    /// serve`) is using DIR; stop it first, or set HEARTH_HOME to another directory". `holder`
    /// says what this process is, for that message (it is written into the lock file, so it
    /// must hold no secret). Creates the directory if needed.
    pub fn lock(&self, holder: &str) -> Result<crate::lock::HomeLock> {
        crate::lock::lock_home(self, holder)
    }

    /// Creates the models and tmp directories if they are missing.
    pub(crate) fn create_dirs(&self) -> Result<()> {
        for dir in [self.models_dir(), self.tmp_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating directory", &dir, e))?;
        }
        Ok(())
    }
}
