//! The household's machines as one pool, over iroh.
//!
//! The head (`hearth serve --pool`) accepts links from the machines the keeper paired; each
//! member (`hearth node`) keeps one link to the head, reports what it has (memory, bandwidth,
//! cores, GPUs) and answers heartbeats, from which the head measures the link. This slice
//! pairs, links, reports and watches; it does not yet move hidden states or weights.
//!
//! # What leaves the machine
//!
//! iroh is used with relays off ([`iroh::RelayMode::Disabled`]), no address lookup service
//! (no n0 DNS, no pkarr), and built without its `portmapper` (UPnP) feature: a connection is a
//! direct QUIC path between two addresses of the home network, found by mDNS (the binary
//! announces and browses) or given as `--peer HOST:PORT`. Besides QUIC on its UDP port, the
//! head answers one TCP question on the same port number: its node key and protocol version
//! (`whois`), so a machine given only an address can start pairing; the key it learns that way
//! is only trusted once the pairing exchange proved it.
//!
//! # Who may connect
//!
//! Pairing ([`code`]) runs SPAKE2 over both node keys with a short one-time code; the head
//! stores the member's key in the household database. Every link is checked against that list
//! when it opens and at every heartbeat, so an unpaired machine gets nothing and a removed one
//! is cut off within a heartbeat (at once when removed through [`head::Head::remove`]).
//! Every remote call has a deadline ([`CALL_DEADLINE`], [`LOST_AFTER`]).

pub mod code;
pub mod head;
pub mod member;
mod report;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use iroh::{PublicKey, SecretKey};
pub use report::{Gpu, LinkReport, Report};

/// The pool protocol this Hearth speaks. Both ends must speak the same one; a mismatch is
/// refused with both numbers in the message.
pub const PROTOCOL_VERSION: u32 = 1;
/// Links between paired machines.
pub const ALPN_POOL: &[u8] = b"hearth/pool";
/// Pairing a new machine (the only thing an unpaired machine may do).
pub const ALPN_PAIR: &[u8] = b"hearth/pair";
/// The head's default port (UDP for QUIC, TCP for `whois`), next to the web page's 4314.
pub const DEFAULT_PORT: u16 = 4315;
/// How long any single request or reply over the network may take.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// How often the head sends a heartbeat on every link.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A link with no heartbeat answered for this long is lost (and the member reconnects).
pub const LOST_AFTER: Duration = Duration::from_secs(6);
/// How long a pairing code stays valid, and how many tries it allows.
pub const INVITE_VALID_SECS: i64 = 600;
pub const INVITE_TRIES: u32 = 3;

/// Everything that can go wrong on the pool, in words for the keeper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a pairing code: a code looks like 7KQ-MX4P-9RT2")]
    BadCode(String),
    #[error(
        "this machine speaks pool protocol {ours}, the other speaks {theirs}: \
         run the same Hearth version on both"
    )]
    Version { ours: u32, theirs: u32 },
    #[error("the head refused: {0}")]
    Refused(String),
    #[error("this machine is not paired with that head; pair it with `hearth node join CODE`")]
    NotPaired,
    #[error("the keeper removed this machine from the pool")]
    Removed,
    #[error("the head did not prove it knows the code: it may not be this household's head")]
    HeadUnproven,
    #[error("{what} took longer than {secs} s", secs = .after.as_secs())]
    Timeout { what: &'static str, after: Duration },
    #[error("the link to {peer} failed: {why}")]
    Link { peer: String, why: String },
    #[error("the pool protocol was not followed: {0}")]
    Protocol(String),
    #[error("cannot open the pool's network endpoint on {addr}: {why}")]
    Bind { addr: SocketAddr, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    BadFile { path: PathBuf, why: String },
    #[error(transparent)]
    Store(#[from] hearth_store::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Runs `fut` with a deadline, naming what timed out.
pub(crate) async fn deadline<T>(
    what: &'static str,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(after, fut)
        .await
        .unwrap_or(Err(Error::Timeout { what, after }))
}

/// This machine's node key, from `path`, made on first use. The key is the machine's identity
/// on the pool: a restarted node is the same node, never a second one. The file holds the 32
/// secret bytes in hex and is readable only by its owner.
pub fn load_or_create_key(path: &Path) -> Result<SecretKey> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).ok();
            let bytes: [u8; 32] =
                bytes
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| Error::BadFile {
                        path: path.to_path_buf(),
                        why: "not a node key (64 hex digits); move it away to make a new one, \
                          which the head will see as a new machine"
                            .into(),
                    })?;
            Ok(SecretKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let key = SecretKey::generate();
            // A temporary name of this process's own, written whole and private from its
            // first byte, then published with a hard link, which (unlike a rename) fails when
            // the key exists: of two processes making one at once, both end with the winner's.
            let tmp = path.with_extension(format!(
                "partial.{}.{}",
                std::process::id(),
                hex::encode(&SecretKey::generate().to_bytes()[..4])
            ));
            write_private(&tmp, hex::encode(key.to_bytes()).as_bytes()).map_err(io)?;
            let published = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match published {
                Ok(()) => {
                    sync_dir(path).map_err(io)?;
                    Ok(key)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    // create_new: a file left there by anyone else is never reused with its mode.
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes a new name in `path`'s folder survive a power cut.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A node key as the household database and the keeper see it: 64 lowercase hex digits.
pub fn key_hex(key: &PublicKey) -> String {
    hex::encode(key.as_bytes())
}

/// Opens this machine's iroh endpoint on `bind` (one socket, exactly there): relays off, no
/// address lookup service, accepting `alpns` (none for a member, which only dials).
pub async fn endpoint(key: SecretKey, bind: SocketAddr, alpns: &[&[u8]]) -> Result<iroh::Endpoint> {
    let bind_err = |why: String| Error::Bind { addr: bind, why };
    let mut builder = iroh::Endpoint::builder(iroh::endpoint::presets::Minimal);
    if !alpns.is_empty() {
        // Anyone can connect to the head before it knows them: what they may open and make it
        // buffer is kept to what pairing and a link need (one stream each, small messages).
        // A member keeps the defaults, as it receives the head's throughput probe.
        use iroh::endpoint::{QuicTransportConfig, VarInt};
        builder = builder.transport_config(
            QuicTransportConfig::builder()
                .max_concurrent_bidi_streams(VarInt::from_u32(2))
                .max_concurrent_uni_streams(VarInt::from_u32(0))
                .stream_receive_window(VarInt::from_u32(128 * 1024))
                .receive_window(VarInt::from_u32(256 * 1024))
                .build(),
        );
    }
    builder
        .secret_key(key)
        .relay_mode(iroh::RelayMode::Disabled)
        .clear_address_lookup()
        .alpns(alpns.iter().map(|a| a.to_vec()).collect())
        .clear_ip_transports()
        .bind_addr(bind)
        .map_err(|e| bind_err(e.to_string()))?
        .bind()
        .await
        .map_err(|e| bind_err(e.to_string()))
}

/// The IPv4 or IPv6 address an endpoint's socket is bound to.
pub fn bound_addr(ep: &iroh::Endpoint) -> Option<SocketAddr> {
    ep.bound_sockets().into_iter().next()
}

/// Refuses a peer speaking another protocol version, naming both.
pub fn check_version(theirs: u32) -> Result<()> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::Version {
            ours: PROTOCOL_VERSION,
            theirs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_key_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool").join("node.key");
        let a = load_or_create_key(&path).unwrap();
        let b = load_or_create_key(&path).unwrap();
        assert_eq!(a.public(), b.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key file is private: {mode:o}");
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            load_or_create_key(&path),
            Err(Error::BadFile { .. })
        ));
    }

    #[test]
    fn processes_making_the_key_at_once_end_with_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("node.key");
            let keys: Vec<_> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| load_or_create_key(&path).unwrap().public()))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let now = load_or_create_key(&path).unwrap().public();
            assert!(keys.iter().all(|k| *k == now), "{keys:?} vs {now:?}");
            // Nothing but the key is left beside it.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn a_version_mismatch_names_both_versions() {
        assert!(check_version(PROTOCOL_VERSION).is_ok());
        let e = check_version(PROTOCOL_VERSION + 1).unwrap_err().to_string();
        assert!(e.contains(&format!("protocol {PROTOCOL_VERSION}")), "{e}");
        assert!(
            e.contains(&format!("speaks {}", PROTOCOL_VERSION + 1)),
            "{e}"
        );
    }
}
