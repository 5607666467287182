//! Passwords, PINs and tokens: the rules they must meet and how they are hashed.
//!
//! Passwords and PINs are low-entropy, so they get argon2id (memory-hard, salted, PHC string
//! with its parameters). Session tokens and API keys are 256 random bits from the operating
//! system, which no dictionary can guess, so SHA-256 — fast enough to run on every request —
//! is the right hash for them.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Error, Result, SecretKind};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes: bounds the work one login can cost.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// PIN length range, in digits.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=8;
/// Longest person name, in characters.
pub const MAX_NAME_CHARS: usize = 40;

/// What a person logs in with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// At least [`MIN_PASSWORD_CHARS`] characters.
    Password(String),
    /// 4 to 8 digits, for children.
    Pin(String),
}

// Secrets never reach a log through `{:?}`.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Password(..)"),
            Secret::Pin(_) => f.write_str("Pin(..)"),
        }
    }
}

impl Secret {
    /// Which kind of secret this is.
    pub fn kind(&self) -> SecretKind {
        match self {
            Secret::Password(_) => SecretKind::Password,
            Secret::Pin(_) => SecretKind::Pin,
        }
    }

    /// The secret's text if it meets its kind's rules.
    pub fn check(&self) -> Result<&str> {
        match self {
            Secret::Password(p) => {
                let chars = p.chars().count();
                if chars < MIN_PASSWORD_CHARS {
                    return Err(Error::BadSecret {
                        why: format!(
                            "a password needs at least {MIN_PASSWORD_CHARS} characters, \
                             this one has {chars}"
                        ),
                    });
                }
                if p.len() > MAX_PASSWORD_BYTES {
                    return Err(Error::BadSecret {
                        why: format!(
                            "a password can be at most {MAX_PASSWORD_BYTES} bytes long, \
                             this one has {}",
                            p.len()
                        ),
                    });
                }
                Ok(p)
            }
            Secret::Pin(p) => {
                if !p.chars().all(|c| c.is_ascii_digit()) {
                    return Err(Error::BadSecret {
                        why: "a PIN must be digits only (0-9)".into(),
                    });
                }
                if !PIN_DIGITS.contains(&p.len()) {
                    return Err(Error::BadSecret {
                        why: format!(
                            "a PIN needs {} to {} digits, this one has {}",
                            PIN_DIGITS.start(),
                            PIN_DIGITS.end(),
                            p.len()
                        ),
                    });
                }
                Ok(p)
            }
        }
    }
}

/// An argon2id PHC string for `secret`, with a fresh random salt. Default parameters
/// (19 MiB, 2 passes): tens of milliseconds on a home machine.
pub(crate) fn hash(secret: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

/// Whether `secret` matches the PHC string `phc`.
pub(crate) fn verify(secret: &str, phc: &str) -> Result<bool> {
    let parsed = PasswordHash::new(phc)
        .map_err(|e| Error::Hash(format!("stored hash is not a PHC string: {e}")))?;
    // The parameters come from the stored string, so hashes made with older parameters still
    // verify.
    Ok(Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok())
}

/// `bytes` random bytes from the operating system, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of a token, as lowercase hex: what the database keeps of tokens and keys.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A person's name trimmed, if it is 1 to [`MAX_NAME_CHARS`] characters with no control
/// characters.
pub(crate) fn check_name(name: &str) -> Result<&str> {
    check_text("name", name, MAX_NAME_CHARS)
}

/// `text` trimmed, if it is 1 to `max` characters with no control characters.
pub(crate) fn check_text<'a>(field: &'static str, text: &'a str, max: usize) -> Result<&'a str> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 {
        return Err(Error::Invalid {
            field,
            why: "must not be empty".into(),
        });
    }
    if chars > max {
        return Err(Error::Invalid {
            field,
            why: format!("can be at most {max} characters, this one has {chars}"),
        });
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::Invalid {
            field,
            why: format!("must not contain control characters, found {c:?}"),
        });
    }
    Ok(text)
}

/// The key names are unique under: Unicode lowercase, so "Ana" and "ANA" are one person.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_secret() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse", &h).unwrap());
        assert!(!verify("correct horsf", &h).unwrap());
        // Fresh salt each time.
        assert_ne!(h, hash("correct horse").unwrap());
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = format!("{:?}", Secret::Password("hunter22".into()));
        assert!(!s.contains("hunter22"), "{s}");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Ana ").unwrap(), "Ana");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"é".repeat(40)).is_ok());
        assert!(check_name(&"é".repeat(41)).is_err());
        assert!(check_name("a\nb").is_err());
        assert_eq!(name_key(" ÉMILE "), "émile");
    }
}
