//! `hearth verify`: re-hashes every file `hearth.lock` pins, whatever its size and modification
//! time say, and reports each model as OK, differs or missing.

use clap::Args;
use hearth_fetch::lockfile::{self, FileState};
use hearth_fetch::Home;

#[derive(Args, Debug)]
pub struct VerifyArgs {}

pub fn run(_a: VerifyArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let lock = lockfile::load(&home)?;
    if lock.models.is_empty() {
        println!(
            "nothing is locked yet: a model is locked the first time `hearth serve` serves it"
        );
        return Ok(());
    }
    let progress = crate::cmd::pull::progress();
    let mut bad = Vec::new();
    for (name, entry) in &lock.models {
        let mut problems = Vec::new();
        for (key, locked) in &entry.files {
            match lockfile::verify_file(&home, name, key, locked, &progress)? {
                FileState::Ok => {}
                FileState::Missing => problems.push(format!("missing: {key}")),
                FileState::Differs { sha256 } => problems.push(format!(
                    "differs: {key} has sha256 {sha256}, the lock pins {}",
                    locked.sha256
                )),
            }
        }
        if problems.is_empty() {
            println!("{name}: OK");
        } else {
            println!("{name}: {}", problems.join("; "));
            bad.push(name.clone());
        }
    }
    if !bad.is_empty() {
        anyhow::bail!(
            "{} of {} locked models are not what the lock pins ({}): pull them again to get the pinned files back, or, if you changed them on purpose, `hearth lock accept MODEL`",
            bad.len(),
            lock.models.len(),
            bad.join(", ")
        );
    }
    Ok(())
}
