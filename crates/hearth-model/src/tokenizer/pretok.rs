//! Pre-tokenizers: split text into the words that byte-level BPE merges within.
//!
//! Each `tokenizer.ggml.pre` value names a list of regexes that llama.cpp applies one after the
//! other: every pass splits each chunk left by the previous pass, and text a regex does not match
//! stays a chunk of its own. llama.cpp itself does not run the big GPT-2 / Llama 3 / Qwen2
//! regexes through a regex engine: it has hand-written scanners for them (unicode.cpp), and those
//! scanners differ from a textbook regex engine in small ways (how a lone trailing space is
//! grouped, how unassigned code points count). To match it token for token we write the same
//! rules by hand here, as code-point scanners over one chunk at a time. That is also faster than
//! a backtracking regex with look-ahead.

use super::unicode::Flags;

/// One splitting pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (GPT-2).
    Gpt2,
    /// `(?i:'s|..)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (Llama 3 with `digits3`, Qwen2 with single digits `\p{N}`).
    Llama3 { digits3: bool },
    /// `\p{N}`: every number code point alone.
    EachNumber,
    /// `\p{N}+`: runs of number code points.
    NumberRuns,
    /// `[\p{P}\$\+<=>\^~\|]+`: runs of punctuation (as llama.cpp's collapsed regex sees it).
    PunctRuns,
    /// `[0-9][0-9][0-9]`: ASCII digit triples.
    AsciiTriples,
}

/// The passes for each pre-tokenizer we support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's regex alone (`gpt-2` and relatives).
    Gpt2,
    /// Llama 3 (`llama-bpe`, `llama3`, ...): digits in groups of up to three.
    Llama3,
    /// Qwen2: like Llama 3 with single digits.
    Qwen2,
    /// SmolLM / StarCoder: every digit alone, then GPT-2's regex.
    SmolLm,
    /// llama.cpp's fallback list for `default` (and for names it does not know).
    Default,
}

impl PreTokenizer {
    /// Maps a `tokenizer.ggml.pre` value to its pre-tokenizer; `None` for names we do not know.
    pub fn from_name(name: &str) -> Option<PreTokenizer> {
        Some(match name {
            "default" => PreTokenizer::Default,
            // llama.cpp also gives all of these add_bos and ignore_merges (see `Tokenizer`).
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => PreTokenizer::Llama3,
            "qwen2" | "stablelm2" | "hunyuan" | "megrez" | "grok-2" => PreTokenizer::Qwen2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => PreTokenizer::SmolLm,
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "mpt" | "olmo" | "jais" | "trillion" => {
                PreTokenizer::Gpt2
            }
            _ => return None,
        })
    }

    /// Names accepted by [`PreTokenizer::from_name`] (for messages).
    pub const KNOWN: &'static str = "default, gpt-2, llama-bpe/llama3, qwen2, smollm (and aliases)";

    pub(crate) fn passes(self) -> &'static [Pass] {
        match self {
            PreTokenizer::Gpt2 => &[Pass::Gpt2],
            PreTokenizer::Llama3 => &[Pass::Llama3 { digits3: true }],
            PreTokenizer::Qwen2 => &[Pass::Llama3 { digits3: false }],
            PreTokenizer::SmolLm => &[Pass::EachNumber, Pass::Gpt2],
            PreTokenizer::Default => &[
                Pass::PunctRuns,
                Pass::Gpt2,
                Pass::NumberRuns,
                Pass::AsciiTriples,
            ],
        }
    }

    /// Splits `chars` into words; returns the length (in code points) of each word, in order.
    pub(crate) fn split(self, chars: &[char], flags: &[Flags]) -> Vec<usize> {
        let mut lens = vec![chars.len()];
        for &pass in self.passes() {
            let mut out = Vec::with_capacity(lens.len() * 2);
            let mut start = 0;
            for &len in &lens {
                let end = start + len;
                let chunk = Chunk {
                    c: &chars[start..end],
                    f: &flags[start..end],
                };
                match pass {
                    Pass::Gpt2 => chunk.gpt2(&mut out),
                    Pass::Llama3 { digits3 } => chunk.llama3(digits3, &mut out),
                    Pass::EachNumber => chunk.isolate(&mut out, |c, f| {
                        is_number_collapsed(c[0], f[0]).then_some(1)
                    }),
                    Pass::NumberRuns => chunk.isolate(&mut out, |c, f| {
                        let n = c
                            .iter()
                            .zip(f)
                            .take_while(|(c, f)| is_number_collapsed(**c, **f))
                            .count();
                        (n > 0).then_some(n)
                    }),
                    Pass::PunctRuns => chunk.isolate(&mut out, |c, f| {
                        let n = c
                            .iter()
                            .zip(f)
                            .take_while(|(c, f)| is_punct_collapsed(**c, **f))
                            .count();
                        (n > 0).then_some(n)
                    }),
                    Pass::AsciiTriples => chunk.isolate(&mut out, |c, _| {
                        (c.len() >= 3 && c[..3].iter().all(|c| c.is_ascii_digit())).then_some(3)
                    }),
                }
                start = end;
            }
            lens = out;
        }
        lens
    }
}

/// `\p{N}` as llama.cpp's collapsed-text std::regex matches it: ASCII digits, and non-ASCII
/// code points of the number category.
fn is_number_collapsed(c: char, f: Flags) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        !f.is_whitespace() && f.is_number()
    }
}

/// `[\p{P}\$\+<=>\^~\|]` as llama.cpp's collapsed regex matches it: for ASCII, a fixed set
/// (note that it lacks the backtick); beyond ASCII, the punctuation category.
fn is_punct_collapsed(c: char, f: Flags) -> bool {
    if c.is_ascii() {
        matches!(c, '!'..='#' | '%'..='*' | ',' ..='/' | ':' | ';' | '?' | '@' | '['..=']' | '_'
            | '{' | '}' | '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
    } else {
        !f.is_whitespace() && f.is_punctuation()
    }
}

/// One chunk of text with its code-point flags.
struct Chunk<'a> {
    c: &'a [char],
    f: &'a [Flags],
}

impl Chunk<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        self.c.get(pos).copied()
    }

    fn flags(&self, pos: usize) -> Flags {
        self.f.get(pos).copied().unwrap_or(Flags::OUTSIDE)
    }

    /// Matches of `m` (given the text from a position, the length of the match there, if any)
    /// become words; the gaps between matches become words too, as std::regex_iterator does.
    fn isolate(&self, out: &mut Vec<usize>, m: impl Fn(&[char], &[Flags]) -> Option<usize>) {
        let mut gap_start = 0;
        let mut pos = 0;
        while pos < self.c.len() {
            match m(&self.c[pos..], &self.f[pos..]) {
                Some(n) => {
                    if pos > gap_start {
                        out.push(pos - gap_start);
                    }
                    out.push(n);
                    pos += n;
                    gap_start = pos;
                }
                None => pos += 1,
            }
        }
        if self.c.len() > gap_start {
            out.push(self.c.len() - gap_start);
        }
    }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `pos`, or 0.
    fn contraction(&self, pos: usize, ignore_case: bool) -> usize {
        if self.cpt(pos) != Some('\'') || pos + 1 >= self.c.len() {
            return 0;
        }
        let low = |c: Option<char>| {
            c.map(|c| {
                if ignore_case {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
        };
        let n1 = low(self.cpt(pos + 1));
        if matches!(n1, Some('s' | 't' | 'm' | 'd')) {
            return 2;
        }
        if pos + 2 < self.c.len() {
            let n2 = low(self.cpt(pos + 2));
            if matches!(
                (n1, n2),
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
            ) {
                return 3;
            }
        }
        0
    }

    /// Number of whitespace code points from `pos`, and the end of the last `\r`/`\n` among them.
    fn whitespace_run(&self, pos: usize) -> (usize, Option<usize>) {
        let mut n = 0;
        let mut last_newline_end = None;
        while self.flags(pos + n).is_whitespace() {
            if matches!(self.cpt(pos + n), Some('\r' | '\n')) {
                last_newline_end = Some(pos + n + 1);
            }
            n += 1;
        }
        (n, last_newline_end)
    }

    fn gpt2(&self, out: &mut Vec<usize>) {
        let n = self.c.len();
        let mut pos = 0;
        while pos < n {
            let start = pos;
            let cpt = self.c[pos];
            let k = self.contraction(pos, false);
            if k > 0 {
                out.push(k);
                pos += k;
                continue;
            }
            let space = usize::from(cpt == ' ');
            let f2 = if space == 1 {
                self.flags(pos + 1)
            } else {
                self.flags(pos)
            };
            let class: Option<fn(Flags) -> bool> = if f2.is_letter() {
                Some(Flags::is_letter)
            } else if f2.is_number() {
                Some(Flags::is_number)
            } else if !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && f2.is_inside() {
                Some(|f: Flags| {
                    !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.is_inside()
                })
            } else {
                None
            };
            if let Some(class) = class {
                pos += space;
                while class(self.flags(pos)) {
                    pos += 1;
                }
                out.push(pos - start);
                continue;
            }
            let (ws, _) = self.whitespace_run(pos);
            if ws > 1 && pos + ws < n {
                // `\s+(?!\S)`: leave the last space to lead the next word.
                pos += ws - 1;
            } else if ws > 0 {
                pos += ws;
            } else {
                pos += 1;
            }
            out.push(pos - start);
        }
    }

    fn llama3(&self, digits3: bool, out: &mut Vec<usize>) {
        let n = self.c.len();
        let mut pos = 0;
        while pos < n {
            let start = pos;
            let cpt = self.c[pos];
            let flags = self.f[pos];
            let k = self.contraction(pos, true);
            if k > 0 {
                out.push(k);
                pos += k;
                continue;
            }
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(cpt == '\r' || cpt == '\n' || flags.is_number())
                && (flags.is_letter() || self.flags(pos + 1).is_letter())
            {
                pos += 1;
                while self.flags(pos).is_letter() {
                    pos += 1;
                }
                out.push(pos - start);
                continue;
            }
            // `\p{N}{1,3}` or `\p{N}`
            if flags.is_number() {
                if digits3 {
                    let mut ini = pos;
                    while self.flags(pos).is_number() {
                        pos += 1;
                        if pos - ini >= 3 {
                            out.push(pos - ini);
                            ini = pos;
                        }
                    }
                    if pos > ini {
                        out.push(pos - ini);
                    }
                } else {
                    pos += 1;
                    out.push(1);
                }
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let space = usize::from(cpt == ' ');
            let mut f2 = if space == 1 {
                self.flags(pos + 1)
            } else {
                flags
            };
            if !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && flags.is_inside() {
                pos += space;
                while !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && f2.is_inside() {
                    pos += 1;
                    f2 = self.flags(pos);
                }
                while matches!(self.cpt(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                out.push(pos - start);
                continue;
            }
            let (ws, last_newline_end) = self.whitespace_run(pos);
            if let Some(end) = last_newline_end {
                // `\s*[\r\n]+`
                pos = end;
            } else if ws > 1 && pos + ws < n {
                // `\s+(?!\S)`
                pos += ws - 1;
            } else if ws > 0 {
                pos += ws;
            } else {
                pos += 1;
            }
            out.push(pos - start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::unicode::flags_of;

    fn words(pre: PreTokenizer, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let flags = flags_of(&chars);
        let mut start = 0;
        pre.split(&chars, &flags)
            .into_iter()
            .map(|n| {
                let w: String = chars[start..start + n].iter().collect();
                start += n;
                w
            })
            .collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words(PreTokenizer::Gpt2, "Hello world's  end 123!!\n\n x"),
            ["Hello", " world", "'s", " ", " end", " 123", "!!", "\n\n", " x"]
        );
        assert_eq!(words(PreTokenizer::Gpt2, "a  "), ["a", "  "]);
    }

    #[test]
    fn smollm_isolates_digits() {
        assert_eq!(
            words(PreTokenizer::SmolLm, "x 1234"),
            ["x", " ", "1", "2", "3", "4"]
        );
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            words(PreTokenizer::Llama3, "I'LL pay 1234567 (now)\n\n  ok"),
            ["I", "'LL", " pay", " ", "123", "456", "7", " (", "now", ")\n\n", " ", " ok"]
        );
        assert_eq!(words(PreTokenizer::Qwen2, "12"), ["1", "2"]);
    }
}
