//! A member: pairing with a head once (`hearth node join CODE`), then keeping a link to it
//! (`hearth node`), reconnecting whenever it drops, until the keeper removes this machine.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{Connection, ConnectionError};
use iroh::{Endpoint, EndpointAddr, PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::code::{Code, Exchange, Side};
use crate::head::{CLOSE_NOT_PAIRED, CLOSE_REMOVED, CLOSE_VERSION, PROBE_BYTES};
use crate::wire::{self, Msg};
use crate::{
    check_version, Error, Report, Result, ALPN_PAIR, ALPN_POOL, CALL_DEADLINE, LOST_AFTER,
    PROTOCOL_VERSION,
};

/// The head this machine paired with, kept in the member's data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadRecord {
    /// The head's node key (hex).
    pub key: String,
    /// Where it was last reached.
    pub addr: Option<SocketAddr>,
}

impl HeadRecord {
    pub fn id(&self) -> Result<PublicKey> {
        let bytes: Option<[u8; 32]> = hex::decode(&self.key).ok().and_then(|b| b.try_into().ok());
        bytes
            .and_then(|b| PublicKey::from_bytes(&b).ok())
            .ok_or_else(|| Error::Protocol(format!("{:?} is not a node key", self.key)))
    }

    pub fn load(path: &Path) -> Result<Option<HeadRecord>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::BadFile {
                    path: path.to_path_buf(),
                    why: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("partial");
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Protocol(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Asks whoever listens at `addr` for its node key (the head's TCP `whois`). Unauthenticated:
/// pairing then proves it.
pub async fn whois(addr: SocketAddr) -> Result<PublicKey> {
    let line = crate::deadline("asking the head for its key", CALL_DEADLINE, async {
        let link = |e: std::io::Error| Error::Link {
            peer: addr.to_string(),
            why: format!("{e} (is `hearth serve --pool` running there?)"),
        };
        let mut sock = tokio::net::TcpStream::connect(addr).await.map_err(link)?;
        let mut buf = Vec::new();
        (&mut sock)
            .take(256)
            .read_to_end(&mut buf)
            .await
            .map_err(link)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await?;
    let mut words = line.split_whitespace();
    let (Some("hearth-pool"), Some(version), Some(key)) =
        (words.next(), words.next(), words.next())
    else {
        return Err(Error::Protocol(format!("{addr} is not a Hearth pool head")));
    };
    let theirs: u32 = version
        .parse()
        .map_err(|_| Error::Protocol(format!("{addr} gave no protocol version")))?;
    check_version(theirs)?;
    HeadRecord {
        key: key.to_string(),
        addr: Some(addr),
    }
    .id()
}

fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_loopback() {
        // A head on loopback is reached from loopback (tests, one-machine trials).
        SocketAddr::new(addr.ip(), 0)
    } else if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    }
}

async fn dial(ep: &Endpoint, head: PublicKey, addr: SocketAddr, alpn: &[u8]) -> Result<Connection> {
    crate::deadline("connecting to the head", CALL_DEADLINE, async {
        ep.connect(EndpointAddr::new(head).with_ip_addr(addr), alpn)
            .await
            .map_err(|e| Error::Link {
                peer: addr.to_string(),
                why: e.to_string(),
            })
    })
    .await
}

/// Pairs this machine (node key `key`, named `name`) with the head at `addr`, using `code`.
/// Returns the head's record, to be saved.
pub async fn join(key: SecretKey, code: &Code, addr: SocketAddr, name: &str) -> Result<HeadRecord> {
    // Before connecting: a name the head would refuse is no reason to spend a try of the code.
    let name = hearth_store::check_machine_name(name)?;
    let head = whois(addr).await?;
    let me = key.public();
    let ep = crate::endpoint(key, unspecified_like(addr), &[]).await?;
    let result = async {
        let conn = dial(&ep, head, addr, ALPN_PAIR).await?;
        let (mut send, mut recv) =
            crate::deadline("opening the pairing stream", CALL_DEADLINE, async {
                conn.open_bi().await.map_err(|e| Error::Link {
                    peer: addr.to_string(),
                    why: e.to_string(),
                })
            })
            .await?;
        let (ex, mine) =
            Exchange::start(Side::Joiner, &code.secret, me.as_bytes(), head.as_bytes());
        let start = Msg::PairStart {
            version: PROTOCOL_VERSION,
            invite: code.id.clone(),
            name: name.to_string(),
            spake: hex::encode(mine),
        };
        wire::send(&mut send, &start, CALL_DEADLINE).await?;
        let Msg::PairReply { spake } =
            wire::recv(&mut recv, "the head's answer", CALL_DEADLINE).await?
        else {
            return Err(Error::Protocol(
                "expected the head's pairing message".into(),
            ));
        };
        let theirs =
            hex::decode(spake).map_err(|_| Error::Protocol("bad pairing message".into()))?;
        let shared = ex.finish(&theirs)?;
        let confirm = Msg::PairConfirm {
            tag: hex::encode(shared.my_tag()),
        };
        wire::send(&mut send, &confirm, CALL_DEADLINE).await?;
        let Msg::Paired { tag } = wire::recv(&mut recv, "the head's proof", CALL_DEADLINE).await?
        else {
            return Err(Error::Protocol("expected the head's proof".into()));
        };
        let proven = hex::decode(&tag).map(|t| shared.check(&t)).unwrap_or(false);
        if !proven {
            return Err(Error::HeadUnproven);
        }
        conn.close(0u32.into(), b"paired");
        Ok(HeadRecord {
            key: crate::key_hex(&head),
            addr: Some(addr),
        })
    }
    .await;
    ep.close().await;
    result
}

/// What happens on a member's link, for its log.
#[derive(Debug, Clone)]
pub enum Event {
    Connected(SocketAddr),
    /// The link dropped (or could not be made); retrying after the delay.
    Retrying {
        why: String,
        after: Duration,
    },
}

/// Where to look for the head each time (the `--peer` addresses, what mDNS finds, the last
/// address that worked). Called off the async workers: it may block.
pub type Finder = Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>;
/// This machine's report, made afresh for each link.
pub type Reporter = Arc<dyn Fn() -> Report + Send + Sync>;
/// Memory available now, for each heartbeat.
pub type Available = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Keeps a link to the paired head for as long as this machine is a member: reconnects with a
/// growing pause (up to 10 s) whenever the link drops. Returns only when the head says no for
/// good: this machine was removed or is not paired, or speaks another protocol version.
pub async fn run(
    key: SecretKey,
    head: HeadRecord,
    find: Finder,
    report: Reporter,
    available: Available,
    on_event: impl Fn(Event) + Send + Sync,
) -> Result<()> {
    let head_id = head.id()?;
    let mut pause = Duration::from_secs(1);
    let mut last = head.addr;
    loop {
        let found = {
            let find = find.clone();
            tokio::task::spawn_blocking(move || find())
                .await
                .unwrap_or_default()
        };
        let mut addrs = found;
        if let Some(a) = last {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        let mut why = String::from("the head was not found (no --peer, nothing seen on mDNS)");
        for addr in addrs {
            match link(&key, head_id, addr, &report, &available, &on_event).await {
                Ok(()) => {
                    last = Some(addr);
                    pause = Duration::from_secs(1);
                    why = "the link dropped".into();
                }
                Err(e @ (Error::Removed | Error::NotPaired | Error::Version { .. })) => {
                    return Err(e)
                }
                Err(Error::Refused(m)) if m.contains("protocol") => return Err(Error::Refused(m)),
                Err(e) => why = e.to_string(),
            }
        }
        on_event(Event::Retrying { why, after: pause });
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// Why the head closed a link, when it said.
fn closed_by_head(conn: &Connection, peer: SocketAddr) -> Option<Error> {
    match conn.close_reason()? {
        ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason).into_owned();
            let code = u32::try_from(c.error_code.into_inner()).unwrap_or(u32::MAX);
            Some(match code {
                CLOSE_NOT_PAIRED => Error::NotPaired,
                CLOSE_REMOVED => Error::Removed,
                CLOSE_VERSION => Error::Refused(reason),
                _ => Error::Link {
                    peer: peer.to_string(),
                    why: format!("the head closed it: {reason}"),
                },
            })
        }
        other => Some(Error::Link {
            peer: peer.to_string(),
            why: other.to_string(),
        }),
    }
}

/// One link, from dialling until it ends. `Ok` when it ended for a reason worth retrying.
async fn link(
    key: &SecretKey,
    head: PublicKey,
    addr: SocketAddr,
    report: &Reporter,
    available: &Available,
    on_event: &(impl Fn(Event) + Send + Sync),
) -> Result<()> {
    let ep = crate::endpoint(key.clone(), unspecified_like(addr), &[]).await?;
    let result = async {
        let conn = dial(&ep, head, addr, ALPN_POOL).await?;
        let outcome = linked(&conn, addr, report, available, on_event).await;
        // The head's own words win over what our side saw of the same ending.
        tokio::time::sleep(Duration::from_millis(50)).await;
        match closed_by_head(&conn, addr) {
            Some(e @ (Error::NotPaired | Error::Removed | Error::Refused(_))) => Err(e),
            _ => outcome,
        }
    }
    .await;
    ep.close().await;
    result
}

async fn linked(
    conn: &Connection,
    addr: SocketAddr,
    report: &Reporter,
    available: &Available,
    on_event: &(impl Fn(Event) + Send + Sync),
) -> Result<()> {
    let (mut send, mut recv) = crate::deadline("opening the link", CALL_DEADLINE, async {
        conn.open_bi().await.map_err(|e| Error::Link {
            peer: addr.to_string(),
            why: e.to_string(),
        })
    })
    .await?;
    let r = report();
    wire::send(
        &mut send,
        &Msg::Hello {
            version: PROTOCOL_VERSION,
            report: r,
        },
        CALL_DEADLINE,
    )
    .await?;
    let Msg::Welcome { version } =
        wire::recv(&mut recv, "the head's welcome", CALL_DEADLINE).await?
    else {
        return Err(Error::Protocol("expected the head's welcome".into()));
    };
    check_version(version)?;
    on_event(Event::Connected(addr));
    // The head measures the link by sending a block of bytes on a stream of its own.
    let probe_conn = conn.clone();
    let probes = tokio::spawn(async move {
        while let Ok((mut s, mut r)) = probe_conn.accept_bi().await {
            let got = tokio::time::timeout(CALL_DEADLINE, r.read_to_end(PROBE_BYTES + 1)).await;
            if matches!(got, Ok(Ok(ref b)) if b.len() == PROBE_BYTES) {
                let _ = s.write_all(b"ok").await;
                let _ = s.finish();
            }
        }
    });
    let result = loop {
        match wire::recv(&mut recv, "the head's heartbeat", LOST_AFTER).await {
            Ok(Msg::Ping { seq }) => {
                let free = {
                    let available = available.clone();
                    tokio::task::spawn_blocking(move || available())
                        .await
                        .unwrap_or(0)
                };
                let pong = Msg::Pong {
                    seq,
                    available_bytes: free,
                };
                if let Err(e) = wire::send(&mut send, &pong, CALL_DEADLINE).await {
                    break Err(e);
                }
            }
            Ok(_) => break Err(Error::Protocol("expected a heartbeat".into())),
            Err(e) => break Err(e),
        }
    };
    probes.abort();
    match result {
        // A dropped or silent link is retried; the caller checks what the head said.
        Err(Error::Timeout { .. } | Error::Link { .. }) => Ok(()),
        other => other,
    }
}
