//! Stop strings over a stream of text.
//!
//! Generated text arrives a token at a time, and a stop string can span tokens. [`StopStrings`]
//! holds back the tail of the text that could still be the start of a stop string, releases the
//! rest, and reports the stop (with the text before it) as soon as one appears — so a streaming
//! client never sees any part of a stop string.

/// Watches streamed text for any of a set of stop strings.
#[derive(Clone, Debug, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Text received but not yet released.
    pending: String,
    stopped: bool,
}

/// What one [`StopStrings::push`] releases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// Text safe to show.
    pub text: String,
    /// A stop string was found; `text` ends just before it and the stream is over.
    pub stopped: bool,
}

impl StopStrings {
    /// Empty stop strings are ignored.
    pub fn new(stops: impl IntoIterator<Item = String>) -> StopStrings {
        StopStrings {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string has been seen.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Adds text; returns what can be shown now.
    pub fn push(&mut self, text: &str) -> Released {
        if self.stopped {
            return Released {
                text: String::new(),
                stopped: true,
            };
        }
        self.pending.push_str(text);
        // The earliest complete stop string wins.
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            self.stopped = true;
            return Released {
                text: out,
                stopped: true,
            };
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let mut keep = 0;
        for s in &self.stops {
            for (i, _) in self.pending.char_indices() {
                let suffix = &self.pending[i..];
                if suffix.len() > keep && s.starts_with(suffix) {
                    keep = suffix.len();
                    break;
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        Released {
            text: out,
            stopped: false,
        }
    }

    /// Ends the stream: releases whatever was held back.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopStrings::new(stops.iter().map(|s| s.to_string()));
        let mut out = String::new();
        for p in pieces {
            let r = s.push(p);
            out.push_str(&r.text);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&s.finish());
        (out, false)
    }

    #[test]
    fn stop_across_tokens_is_never_shown() {
        assert_eq!(
            run(&["\nUser:"], &["Hello", "\nUs", "er:", " more"]),
            ("Hello".to_string(), true)
        );
    }

    #[test]
    fn near_miss_is_released() {
        assert_eq!(run(&["STOP"], &["ST", "OP!"]), (String::new(), true));
        assert_eq!(run(&["STOP"], &["ST", "ART"]), ("START".to_string(), false));
    }

    #[test]
    fn earliest_stop_wins() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".to_string(), true));
    }

    #[test]
    fn multibyte_text_is_split_on_char_boundaries() {
        assert_eq!(
            run(&["é!"], &["café", " ok"]),
            ("café ok".to_string(), false)
        );
        assert_eq!(run(&["é!"], &["café", "!"]), ("caf".to_string(), true));
    }

    #[test]
    fn no_stops_passes_everything() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".to_string(), false));
    }
}
