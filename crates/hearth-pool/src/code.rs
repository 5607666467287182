//! Pairing codes and the exchange that checks them (SPAKE2, then key confirmation).
//!
//! A code is `III-SSSS-SSSS`: three characters naming the invite (sent in the clear, so the head
//! knows which invite a machine answers) and eight that are the password (40 bits, never sent).
//! Both machines' node keys go into SPAKE2 as its identities, so the shared key only matches
//! when each side saw the same two keys on the connection: a machine in the middle, which must
//! present its own key to each side, derives nothing useful even if it knew the code. Someone
//! who only watches learns nothing about the code, and each wrong guess costs one of the
//! invite's few tries.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::Error;

/// The characters of a code: no 0/O, 1/I, so a code read aloud or copied by hand survives.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Characters naming the invite.
pub const ID_CHARS: usize = 3;
/// Characters of the secret half (5 bits each: 40 bits).
pub const SECRET_CHARS: usize = 8;

/// A pairing code, split into its two halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// Which invite (public).
    pub id: String,
    /// The password (never sent).
    pub secret: String,
}

impl Code {
    /// A fresh random code.
    pub fn generate() -> Code {
        let mut rng = rand::rngs::OsRng;
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect()
        };
        Code {
            id: pick(ID_CHARS),
            secret: pick(SECRET_CHARS),
        }
    }

    /// Reads a code as a person typed it: any case, dashes and spaces anywhere.
    pub fn parse(text: &str) -> Result<Code, Error> {
        let chars: String = text
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bad = chars
            .chars()
            .find(|c| !ALPHABET.contains(&(*c as u8)) || !c.is_ascii());
        if chars.len() != ID_CHARS + SECRET_CHARS || bad.is_some() {
            return Err(Error::BadCode(text.trim().to_string()));
        }
        Ok(Code {
            id: chars[..ID_CHARS].to_string(),
            secret: chars[ID_CHARS..].to_string(),
        })
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.secret.split_at(SECRET_CHARS / 2);
        write!(f, "{}-{a}-{b}", self.id)
    }
}

/// Which end of the exchange: the machine joining (SPAKE2's side A) or the head (side B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Joiner,
    Head,
}

/// One side's exchange in progress.
pub struct Exchange {
    side: Side,
    state: Spake2<Ed25519Group>,
}

/// The key both sides derived, once the other's message arrived.
pub struct Shared {
    side: Side,
    key: Vec<u8>,
}

impl Exchange {
    /// Starts the exchange for the invite's `secret` between the two node keys (32 bytes each,
    /// as each side saw them on the connection). Returns the message to send.
    pub fn start(
        side: Side,
        secret: &str,
        joiner: &[u8; 32],
        head: &[u8; 32],
    ) -> (Exchange, Vec<u8>) {
        let password = Password::new(secret.as_bytes());
        let (a, b) = (Identity::new(joiner), Identity::new(head));
        let (state, msg) = match side {
            Side::Joiner => Spake2::<Ed25519Group>::start_a(&password, &a, &b),
            Side::Head => Spake2::<Ed25519Group>::start_b(&password, &a, &b),
        };
        (Exchange { side, state }, msg)
    }

    /// Takes the other side's message. A malformed one fails here; a wrong code does not (it
    /// gives a different key), which the confirmation then shows.
    pub fn finish(self, theirs: &[u8]) -> Result<Shared, Error> {
        let key = self
            .state
            .finish(theirs)
            .map_err(|_| Error::Protocol("the pairing message was malformed".into()))?;
        Ok(Shared {
            side: self.side,
            key,
        })
    }
}

impl Shared {
    fn tag_for(&self, side: Side) -> [u8; 32] {
        let label: &[u8] = match side {
            Side::Joiner => b"hearth pool pairing: joiner confirms",
            Side::Head => b"hearth pool pairing: head confirms",
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// This side's proof that it derived the key.
    pub fn my_tag(&self) -> [u8; 32] {
        self.tag_for(self.side)
    }

    /// Checks the other side's proof (in constant time).
    pub fn check(&self, theirs: &[u8]) -> bool {
        let other = match self.side {
            Side::Joiner => Side::Head,
            Side::Head => Side::Joiner,
        };
        let label: &[u8] = match other {
            Side::Joiner => b"hearth pool pairing: joiner confirms",
            Side::Head => b"hearth pool pairing: head confirms",
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(label);
        mac.verify_slice(theirs).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const J: [u8; 32] = [1; 32];
    const H: [u8; 32] = [2; 32];

    fn run(
        joiner_secret: &str,
        head_secret: &str,
        j_sees: ([u8; 32], [u8; 32]),
        h_sees: ([u8; 32], [u8; 32]),
    ) -> (bool, bool) {
        let (j, jm) = Exchange::start(Side::Joiner, joiner_secret, &j_sees.0, &j_sees.1);
        let (h, hm) = Exchange::start(Side::Head, head_secret, &h_sees.0, &h_sees.1);
        let j = j.finish(&hm).unwrap();
        let h = h.finish(&jm).unwrap();
        (h.check(&j.my_tag()), j.check(&h.my_tag()))
    }

    #[test]
    fn the_right_code_pairs_both_sides() {
        assert_eq!(run("ABCDEFGH", "ABCDEFGH", (J, H), (J, H)), (true, true));
    }

    #[test]
    fn a_wrong_code_pairs_neither() {
        assert_eq!(run("ABCDEFGH", "ABCDEFGJ", (J, H), (J, H)), (false, false));
    }

    #[test]
    fn a_machine_in_the_middle_pairs_nothing_even_knowing_the_code() {
        // The joiner dialled a key M that is not the head's; the head sees the joiner's key.
        let m = [9; 32];
        assert_eq!(run("ABCDEFGH", "ABCDEFGH", (J, m), (J, H)), (false, false));
        // The head sees a key M that is not the joiner's.
        assert_eq!(run("ABCDEFGH", "ABCDEFGH", (J, H), (m, H)), (false, false));
    }

    #[test]
    fn the_messages_carry_nothing_of_the_code() {
        // Each start uses fresh randomness: the same code and keys give unrelated messages, so
        // what an eavesdropper sees is not a function of the code alone.
        let (_, a) = Exchange::start(Side::Joiner, "ABCDEFGH", &J, &H);
        let (_, b) = Exchange::start(Side::Joiner, "ABCDEFGH", &J, &H);
        assert_ne!(a, b);
        assert!(!a.windows(8).any(|w| w == b"ABCDEFGH"));
        // A tag is useless for another session's key.
        let (j1, jm1) = Exchange::start(Side::Joiner, "ABCDEFGH", &J, &H);
        let (h1, hm1) = Exchange::start(Side::Head, "ABCDEFGH", &J, &H);
        let (h2, _) = Exchange::start(Side::Head, "ABCDEFGH", &J, &H);
        let j1 = j1.finish(&hm1).unwrap();
        let tag = j1.my_tag();
        assert!(h1.finish(&jm1).unwrap().check(&tag));
        let (_, jm2) = Exchange::start(Side::Joiner, "ABCDEFGH", &J, &H);
        assert!(!h2.finish(&jm2).unwrap().check(&tag));
    }

    #[test]
    fn codes_read_back_as_typed() {
        for _ in 0..50 {
            let c = Code::generate();
            let shown = c.to_string();
            assert_eq!(shown.len(), ID_CHARS + SECRET_CHARS + 2);
            assert_eq!(Code::parse(&shown).unwrap(), c);
            assert_eq!(
                Code::parse(&shown.to_lowercase().replace('-', " ")).unwrap(),
                c
            );
        }
        assert!(Code::parse("ABC-DEFG-HJK").is_err());
        assert!(Code::parse("ABC-DEFG-HJK0").is_err());
        assert!(Code::parse("ABC-DEFG-HJKMN").is_err());
        assert!(Code::parse("").is_err());
    }
}
