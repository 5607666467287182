//! `hearth pull SPEC`: install a catalog model, a URL or a local file, with progress on stderr.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use hearth_fetch::{human_bytes, Catalog, Home, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Arguments of `hearth pull`.
#[derive(Args, Debug, Clone)]
pub struct PullArgs {
    /// A catalog name (e.g. smollm2-135m, gemma3-270m), an http(s) URL of a .gguf file, or the
    /// path of a local .gguf file. Without it, the catalog's default model.
    pub spec: Option<String>,
}

/// Runs `hearth pull`.
pub fn run(args: PullArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let catalog = Catalog::load(&home)?;
    let spec = args
        .spec
        .unwrap_or_else(|| catalog.default_model().name.clone());
    let started = Instant::now();
    let item = hearth_fetch::pull(&home, &catalog, &spec, &progress())?;
    // The result line goes to stdout for scripts; a closed pipe there is not worth failing for.
    let _ = writeln!(
        std::io::stdout(),
        "{}  {}  sha256 {}  {}",
        item.name,
        human_bytes(item.size),
        item.sha256,
        item.full_path(&home).display()
    );
    eprintln!("hearth: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The progress display for pulls: an `indicatif` bar on a terminal, otherwise one line when
/// each phase starts and ends (so logs and CI output stay readable).
pub fn progress() -> TermProgress {
    TermProgress {
        interactive: std::io::stderr().is_terminal(),
        bar: RefCell::new(None),
    }
}

/// See [`progress`].
pub struct TermProgress {
    interactive: bool,
    bar: RefCell<Option<ProgressBar>>,
}

impl Progress for TermProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        if !self.interactive {
            match total {
                Some(n) => eprintln!("hearth: {label} ({})", human_bytes(n)),
                None => eprintln!("hearth: {label}"),
            }
            return;
        }
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                .with_style(bar_style()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_style(spinner_style()),
        };
        bar.set_message(label.to_string());
        // Redraws a few times a second even while pip, not Hearth, is moving the bytes.
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(old) = self.bar.replace(Some(bar)) {
            old.finish_and_clear();
        }
    }

    fn set(&self, done: u64) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.set_position(done);
        }
    }

    fn finish(&self, message: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("hearth: {message}");
    }
}

impl Drop for TermProgress {
    fn drop(&mut self) {
        // An error mid-phase must not leave a half-drawn bar above the error line.
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {msg} [{bar:20}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {decimal_bytes} {decimal_bytes_per_sec}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}
