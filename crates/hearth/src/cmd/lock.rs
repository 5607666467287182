//! `hearth lock show` and `hearth lock accept`: what `hearth.lock` pins, and pinning a change
//! the keeper wants (see hearth-fetch's `lockfile` module for what is pinned and why).

use anyhow::Context;
use clap::{Args, Subcommand};
use hearth_fetch::lockfile::{self, Change, ModelLock, Pins};
use hearth_fetch::{Catalog, Home};
use hearth_gguf::Gguf;

#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(subcommand)]
    pub command: LockCommand,
}

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Print hearth.lock, then what this Hearth would serve differently (as comments).
    Show,
    /// Show what differs from the lock for MODEL (every locked model without one): this
    /// Hearth's template and defaults, and files changed since they were pinned; then pin them.
    Accept {
        /// A locked model's name.
        model: Option<String>,
    },
}

pub fn run(a: LockArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    match a.command {
        LockCommand::Show => show(&home),
        LockCommand::Accept { model } => accept(&home, model.as_deref()),
    }
}

fn show(home: &Home) -> anyhow::Result<()> {
    let path = lockfile::path(home);
    let lock = lockfile::load(home)?;
    if lock.models.is_empty() {
        println!(
            "# {} pins nothing yet: a model is locked the first time `hearth serve` serves it",
            path.display()
        );
        return Ok(());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    print!("{text}");
    for (name, changes) in pending(home)? {
        match changes {
            Ok(changes) if changes.is_empty() => {}
            Ok(changes) => {
                println!("\n# this Hearth would serve {name} differently (`hearth lock accept {name}` pins it):");
                for c in changes {
                    println!(
                        "#   {}: locked {}, this Hearth: {}",
                        c.what, c.locked, c.now
                    );
                }
            }
            Err(e) => println!("\n# {name}: cannot compare with this Hearth: {e:#}"),
        }
    }
    Ok(())
}

fn accept(home: &Home, model: Option<&str>) -> anyhow::Result<()> {
    let lock = lockfile::load(home)?;
    let names: Vec<String> = match model {
        Some(m) => vec![m.to_string()],
        None => lock.models.keys().cloned().collect(),
    };
    if names.is_empty() {
        println!(
            "nothing is locked yet: a model is locked the first time `hearth serve` serves it"
        );
        return Ok(());
    }
    let progress = crate::cmd::pull::progress();
    for name in names {
        let entry = lock
            .models
            .get(&name)
            .ok_or_else(|| hearth_fetch::Error::NotLocked {
                model: name.clone(),
            })?;
        let now = now_pins(home, &name, entry)?;
        // A file the keeper changed on purpose is hashed as it is now.
        let files = lockfile::rehash_changed(home, entry, &progress)?;
        let changes = lockfile::accept(home, &name, now, Some(files))?;
        print_accepted(&name, &changes);
    }
    println!("(a running `hearth serve` uses what was accepted here from its next start; accepting in Settings switches at once)");
    Ok(())
}

fn print_accepted(name: &str, changes: &[Change]) {
    if changes.is_empty() {
        println!("{name}: nothing to accept, the lock already pins what this Hearth serves");
        return;
    }
    println!("{name}: accepted");
    for c in changes {
        println!("  {}: was {}, now {}", c.what, c.locked, c.now);
    }
}

/// What this Hearth would serve a locked model with, read from its (first) file's header.
fn now_pins(home: &Home, name: &str, entry: &ModelLock) -> anyhow::Result<Pins> {
    let catalog = Catalog::load(home)?;
    let key = entry
        .files
        .keys()
        .next()
        .with_context(|| format!("the lock has no file for {name}"))?;
    let path = lockfile::key_path(home, key);
    let gguf = Gguf::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    crate::load::current_pins(catalog.get(name), gguf.metadata())
}

type Pending = Vec<(String, anyhow::Result<Vec<Change>>)>;

/// For every locked model, how this Hearth would serve it differently from the lock.
fn pending(home: &Home) -> anyhow::Result<Pending> {
    let lock = lockfile::load(home)?;
    Ok(lock
        .models
        .iter()
        .map(|(name, entry)| {
            let changes =
                now_pins(home, name, entry).map(|now| lockfile::diff(&entry.pins(), &now));
            (name.clone(), changes)
        })
        .collect())
}

/// The pending differences for Settings: `[{"model", "changes": [{"what", "locked", "now"}]}]`
/// (or `"error"` instead of `"changes"` when a model cannot be compared), models with
/// differences only.
pub fn pending_json() -> serde_json::Value {
    let list = Home::from_env()
        .map_err(anyhow::Error::from)
        .and_then(|home| pending(&home));
    let items = match list {
        Ok(items) => items,
        Err(e) => return serde_json::json!([{"model": "", "error": format!("{e:#}")}]),
    };
    serde_json::Value::Array(
        items
            .into_iter()
            .filter_map(|(model, changes)| match changes {
                Ok(c) if c.is_empty() => None,
                Ok(c) => Some(serde_json::json!({"model": model, "changes": c})),
                Err(e) => Some(serde_json::json!({"model": model, "error": format!("{e:#}")})),
            })
            .collect(),
    )
}

/// Pins this Hearth's template and defaults for `model` (Settings' Accept; the running server
/// has already checked the model's bytes).
pub fn accept_pins(model: &str) -> anyhow::Result<Vec<Change>> {
    let home = Home::from_env()?;
    let lock = lockfile::load(&home)?;
    let entry = lock
        .models
        .get(model)
        .ok_or_else(|| hearth_fetch::Error::NotLocked {
            model: model.to_string(),
        })?;
    let now = now_pins(&home, model, entry)?;
    Ok(lockfile::accept(&home, model, now, None)?)
}
