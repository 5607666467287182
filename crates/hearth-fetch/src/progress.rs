//! How long operations report how far they got. The library only calls this trait; the CLI draws
//! `indicatif` bars with it, tests pass [`Silent`], and `test_model` prints a line per phase.

/// Receives the phases of a pull and their byte counts. Calls come from the pulling thread only.
pub trait Progress {
    /// A phase begins ("downloading with pip", "joining", "verifying", ...); `total` is the
    /// expected number of bytes when known.
    fn start(&self, label: &str, total: Option<u64>);
    /// Bytes done so far in the current phase (absolute, not a delta).
    fn set(&self, done: u64);
    /// The current phase ended with this message.
    fn finish(&self, message: &str);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn set(&self, _done: u64) {}
    fn finish(&self, _message: &str) {}
}

/// Prints one line on stderr when a phase starts and one when it ends; for logs and tests that
/// must say why they are slow without drawing bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

impl Progress for Lines {
    fn start(&self, label: &str, total: Option<u64>) {
        match total {
            Some(n) => eprintln!("hearth: {label} ({})", crate::error::human_bytes(n)),
            None => eprintln!("hearth: {label}"),
        }
    }
    fn set(&self, _done: u64) {}
    fn finish(&self, message: &str) {
        eprintln!("hearth: {message}");
    }
}
