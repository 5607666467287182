//! Code-point classes as llama.cpp's pre-tokenizers see them, and GPT-2's byte ↔ char map.
//!
//! llama.cpp classifies each code point into one general-category group (letter, number,
//! punctuation, symbol, mark, separator, control, or undefined for unassigned code points) plus
//! a separate "whitespace" bit taken from Unicode's `White_Space` property. The splitting rules
//! in [`super::pretok`] only ever ask these questions, so that is all this module answers.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Code points assigned by Unicode 16.0, which the `unicode-general-category` crate knows but
/// llama.cpp's tables (Unicode 15.1) do not: llama.cpp treats them as unassigned, and so must we
/// to split text the same way. Inclusive ranges, ascending.
const ASSIGNED_AFTER_15_1: &[(u32, u32)] = &[
    (0x00897, 0x00897),
    (0x01B4E, 0x01B4F),
    (0x01B7F, 0x01B7F),
    (0x01C89, 0x01C8A),
    (0x02427, 0x02429),
    (0x031E4, 0x031E5),
    (0x0A7CB, 0x0A7CD),
    (0x0A7DA, 0x0A7DC),
    (0x105C0, 0x105F3),
    (0x10D40, 0x10D65),
    (0x10D69, 0x10D85),
    (0x10D8E, 0x10D8F),
    (0x10EC2, 0x10EC4),
    (0x10EFC, 0x10EFC),
    (0x11380, 0x11389),
    (0x1138B, 0x1138B),
    (0x1138E, 0x1138E),
    (0x11390, 0x113B5),
    (0x113B7, 0x113C0),
    (0x113C2, 0x113C2),
    (0x113C5, 0x113C5),
    (0x113C7, 0x113CA),
    (0x113CC, 0x113D5),
    (0x113D7, 0x113D8),
    (0x113E1, 0x113E2),
    (0x116D0, 0x116E3),
    (0x11BC0, 0x11BE1),
    (0x11BF0, 0x11BF9),
    (0x11F5A, 0x11F5A),
    (0x13460, 0x143FA),
    (0x16100, 0x16139),
    (0x16D40, 0x16D79),
    (0x18CFF, 0x18CFF),
    (0x1CC00, 0x1CCF9),
    (0x1CD00, 0x1CEB3),
    (0x1E5D0, 0x1E5FA),
    (0x1E5FF, 0x1E5FF),
    (0x1F8B2, 0x1F8BB),
    (0x1F8C0, 0x1F8C1),
    (0x1FA89, 0x1FA89),
    (0x1FA8F, 0x1FA8F),
    (0x1FABE, 0x1FABE),
    (0x1FAC6, 0x1FAC6),
    (0x1FADC, 0x1FADC),
    (0x1FADF, 0x1FADF),
    (0x1FAE9, 0x1FAE9),
    (0x1FBCB, 0x1FBEF),
];

/// The class bits of one code point. A value of 0 means "outside the text" (the splitters use it
/// for positions past the end of a chunk), so every real code point has at least one bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Flags(u16);

impl Flags {
    pub const UNDEFINED: u16 = 0x0001;
    pub const NUMBER: u16 = 0x0002;
    pub const LETTER: u16 = 0x0004;
    pub const SEPARATOR: u16 = 0x0008;
    pub const MARK: u16 = 0x0010;
    pub const PUNCTUATION: u16 = 0x0020;
    pub const SYMBOL: u16 = 0x0040;
    pub const CONTROL: u16 = 0x0080;
    pub const WHITESPACE: u16 = 0x0100;

    /// Flags of a position outside the chunk being split.
    pub const OUTSIDE: Flags = Flags(0);

    pub fn of(c: char) -> Flags {
        let cp = c as u32;
        let newer = ASSIGNED_AFTER_15_1
            .binary_search_by(|&(lo, hi)| {
                if hi < cp {
                    std::cmp::Ordering::Less
                } else if lo > cp {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok();
        let cat = match get_general_category(c) {
            _ if newer => Self::UNDEFINED,
            G::Unassigned => Self::UNDEFINED,
            G::Control | G::Format | G::PrivateUse | G::Surrogate => Self::CONTROL,
            G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter => Self::LETTER,
            G::SpacingMark | G::EnclosingMark | G::NonspacingMark => Self::MARK,
            G::DecimalNumber | G::LetterNumber | G::OtherNumber => Self::NUMBER,
            G::ConnectorPunctuation
            | G::DashPunctuation
            | G::ClosePunctuation
            | G::FinalPunctuation
            | G::InitialPunctuation
            | G::OtherPunctuation
            | G::OpenPunctuation => Self::PUNCTUATION,
            G::CurrencySymbol | G::ModifierSymbol | G::MathSymbol | G::OtherSymbol => Self::SYMBOL,
            G::LineSeparator | G::ParagraphSeparator | G::SpaceSeparator => Self::SEPARATOR,
            // The enum is non-exhaustive; a future category is treated like an unassigned one.
            _ => Self::UNDEFINED,
        };
        // Rust's `char::is_whitespace` is exactly Unicode's White_Space property, the same set
        // llama.cpp hard-codes.
        let ws = if c.is_whitespace() {
            Self::WHITESPACE
        } else {
            0
        };
        Flags(cat | ws)
    }

    pub fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    pub fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    pub fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    pub fn is_punctuation(self) -> bool {
        self.0 & Self::PUNCTUATION != 0
    }
    /// True for any real code point (false only for [`Flags::OUTSIDE`]).
    pub fn is_inside(self) -> bool {
        self.0 != 0
    }
}

/// Flags for a whole string, one per code point. ASCII goes through a small table because it
/// is most of the text most of the time.
pub(crate) fn flags_of(chars: &[char]) -> Vec<Flags> {
    static ASCII: std::sync::OnceLock<[Flags; 128]> = std::sync::OnceLock::new();
    let ascii = ASCII.get_or_init(|| {
        let mut t = [Flags::OUTSIDE; 128];
        for (i, f) in t.iter_mut().enumerate() {
            // `i < 128` so the cast is a valid ASCII char.
            *f = Flags::of(char::from(i as u8));
        }
        t
    });
    chars
        .iter()
        .map(|&c| {
            if (c as u32) < 128 {
                ascii[c as usize]
            } else {
                Flags::of(c)
            }
        })
        .collect()
}

/// GPT-2's reversible map from bytes to printable chars: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100.. in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let cp = if printable {
            u32::from(b)
        } else {
            let cp = next;
            next += 1;
            cp
        };
        // All values are below U+0144, valid scalar values.
        table[usize::from(b)] = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_common_chars() {
        assert!(Flags::of('a').is_letter());
        assert!(Flags::of('é').is_letter());
        assert!(Flags::of('中').is_letter());
        assert!(Flags::of('7').is_number());
        assert!(Flags::of('²').is_number());
        assert!(Flags::of(' ').is_whitespace());
        assert!(Flags::of('\u{3000}').is_whitespace());
        assert!(Flags::of('\u{85}').is_whitespace());
        assert!(!Flags::of('\u{200B}').is_whitespace());
        assert!(Flags::of('!').is_punctuation());
        assert!(!Flags::of('$').is_punctuation());
        assert!(Flags::of('\u{E000}').is_inside());
        // Unicode 16 letter; unassigned for llama.cpp's Unicode 15.1 tables.
        assert_eq!(Flags::of('\u{105C0}'), Flags(Flags::UNDEFINED));
    }

    #[test]
    fn gpt2_byte_table() {
        let t = byte_to_char_table();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0xAD], '\u{143}');
        let mut seen = std::collections::HashSet::new();
        assert!(t.iter().all(|c| seen.insert(*c)));
    }
}
