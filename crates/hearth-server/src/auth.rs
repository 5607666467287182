//! Who may call `/v1`.
//!
//! | listener     | API keys configured | `/v1`                        |
//! |--------------|---------------------|------------------------------|
//! | loopback     | none                | open (as llama.cpp, Ollama)  |
//! | loopback     | some                | a valid key is required      |
//! | non-loopback | none                | refuse to start              |
//! | non-loopback | some                | a valid key is required      |
//!
//! Keys are compared in constant time, so response timing does not reveal how much of a guess
//! was right.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap};

/// The `/v1` gate.
#[derive(Clone, Debug)]
pub struct Auth {
    keys: Vec<String>,
    loopback: bool,
}

/// Why the server must not start with this listener and these keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("refusing to listen on {addr} without an API key: anyone on the network could use this machine's model. Give one with --api-key KEY (or HEARTH_API_KEYS=key1,key2), or listen on loopback only (--listen 127.0.0.1:PORT).")]
pub struct OpenToNetwork {
    pub addr: SocketAddr,
}

impl Auth {
    /// Checks the table above and builds the gate. Empty keys are ignored.
    pub fn new(listen: SocketAddr, keys: Vec<String>) -> Result<Auth, OpenToNetwork> {
        if keys.iter().all(|k| k.trim().is_empty()) && !listen.ip().is_loopback() {
            return Err(OpenToNetwork { addr: listen });
        }
        Ok(Auth::household(listen, keys))
    }

    /// The gate for a server with the household page: it may listen beyond loopback without a
    /// configured key, because `/v1` then needs a household API key or a logged-in session
    /// (see the table in `household`), never nothing.
    pub fn household(listen: SocketAddr, keys: Vec<String>) -> Auth {
        let keys = keys
            .into_iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        Auth {
            keys,
            loopback: listen.ip().is_loopback(),
        }
    }

    /// Whether `/v1` is open to anyone: loopback with no keys configured.
    pub fn open(&self) -> bool {
        self.loopback && self.keys.is_empty()
    }

    /// Whether `/v1` needs a key.
    pub fn required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether a request with these headers may call `/v1`.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if self.keys.is_empty() {
            return true;
        }
        self.configured(headers).is_some()
    }

    /// The configured key these headers carry, if any.
    fn configured(&self, headers: &HeaderMap) -> Option<&str> {
        let given = api_key(headers)?;
        self.keys
            .iter()
            .find(|k| constant_time_eq(k.as_bytes(), given.as_bytes()))
            .map(String::as_str)
    }

    /// Who these headers identify as a configured key's holder (`None` when they carry none).
    pub(crate) fn configured_caller(&self, headers: &HeaderMap) -> Option<Caller> {
        use sha2::Digest;
        let key = self.configured(headers)?;
        let digest = sha2::Sha256::digest(key.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Some(Caller::ConfiguredKey(hex))
    }
}

/// Who made an API request, as the key rule established it. The API families scope what they
/// store per caller (stored Responses, for one) and allow the keeper's actions (pulling a model)
/// only to the keeper. [`crate::routes`] puts it into every `/v1` (and `/api` API family)
/// request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Holds a key given with `--api-key` or `HEARTH_API_KEYS`: whoever runs the server, so
    /// the keeper. Named by a prefix of the key's sha256, never the key.
    ConfiguredKey(String),
    /// An app with one of the household's API keys (by the key's id).
    HouseholdKey(i64),
    /// A person logged in on the page (with the session's CSRF token).
    Person { id: i64, keeper: bool },
    /// Nobody in particular: the API is open (loopback, no keys, no household set up).
    Open,
}

impl Caller {
    /// A stable name to scope stored data by: data stored by one caller is never another's.
    pub fn owner(&self) -> String {
        match self {
            Caller::ConfiguredKey(hash) => format!("key:{hash}"),
            // The store's names: it deletes what a removed person or revoked key stored.
            Caller::HouseholdKey(id) => hearth_store::api_key_owner(*id),
            Caller::Person { id, .. } => hearth_store::person_owner(*id),
            Caller::Open => "open".to_string(),
        }
    }

    /// Whether this caller may do what only the keeper does (pull models).
    pub fn is_keeper(&self) -> bool {
        matches!(
            self,
            Caller::ConfiguredKey(_) | Caller::Person { keeper: true, .. }
        )
    }
}

/// The API key a request carries: `Authorization: Bearer KEY` (OpenAI, Ollama) or `x-api-key`
/// (Anthropic's clients send that one).
pub fn api_key(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| {
        headers
            .get("x-api-key")?
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn with_key(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {k}").parse().expect("header"),
        );
        h
    }

    #[test]
    fn the_table() {
        let open = Auth::new(addr("127.0.0.1:8080"), vec![]).expect("loopback, no keys");
        assert!(open.allows(&HeaderMap::new()));
        let keyed = Auth::new(addr("[::1]:8080"), vec!["s3cret".into()]).expect("loopback");
        assert!(!keyed.allows(&HeaderMap::new()));
        assert!(!keyed.allows(&with_key("wrong!")));
        assert!(keyed.allows(&with_key("s3cret")));
        let err = Auth::new(addr("0.0.0.0:8080"), vec![" ".into()]).expect_err("open to all");
        assert!(err.to_string().contains("--api-key"));
        let lan = Auth::new(addr("192.168.1.5:8080"), vec!["k".into()]).expect("lan, keyed");
        assert!(lan.required() && lan.allows(&with_key("k")) && !lan.allows(&with_key("K")));
    }

    #[test]
    fn x_api_key_is_a_key_like_bearer() {
        let keyed = Auth::new(addr("127.0.0.1:8080"), vec!["s3cret".into()]).expect("loopback");
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "s3cret".parse().expect("header"));
        assert!(keyed.allows(&h));
        h.insert("x-api-key", "wrong".parse().expect("header"));
        assert!(!keyed.allows(&h));
        let caller = keyed
            .configured_caller(&with_key("s3cret"))
            .expect("caller");
        assert!(caller.is_keeper());
        assert!(!caller.owner().contains("s3cret"));
    }
}
