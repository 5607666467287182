//! Incremental detokenization for streaming: never emit half a UTF-8 character.
//!
//! Byte-level vocabularies split multi-byte characters (emoji, CJK) across tokens, so the text
//! of one token may end in the middle of a character. The decoder keeps such a tail until the
//! next token completes it. Bytes that can never become valid UTF-8 are emitted as U+FFFD right
//! away, so a broken sequence cannot stall the stream.

use super::Tokenizer;

/// Turns a stream of token ids into text, one token at a time.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.push_bytes(tok.token_to_piece(id))
    }

    /// Adds raw bytes; returns the text that is now complete.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, tail) = rest.split_at(e.valid_up_to());
                    // `valid` is valid UTF-8 by the definition of `valid_up_to`.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: keep it for the next token.
                        None => {
                            rest = tail;
                            break;
                        }
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &tail[n..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Ends the stream: whatever is still held back comes out (incomplete bytes as U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_partial_chars() {
        let mut d = StreamDecoder::new();
        let emoji = "👍".as_bytes();
        assert_eq!(d.push_bytes(b"ok "), "ok ");
        assert_eq!(d.push_bytes(&emoji[..1]), "");
        assert_eq!(d.push_bytes(&emoji[1..3]), "");
        assert_eq!(d.push_bytes(&emoji[3..]), "👍");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn invalid_bytes_do_not_stall() {
        let mut d = StreamDecoder::new();
        assert_eq!(d.push_bytes(&[0xFF, b'a']), "\u{FFFD}a");
        assert_eq!(d.push_bytes(&[0xE4, 0xB8]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
