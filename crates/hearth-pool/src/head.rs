//! The head: accepts pairings and links from paired machines, heartbeats every link, measures
//! it, and cuts off any machine the keeper removed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, IncomingAddr, VarInt};
use iroh::{Endpoint, PublicKey, SecretKey};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::code::{Code, Exchange, Side};
use crate::wire::{self, Msg};
use crate::{
    check_version, key_hex, Error, LinkReport, Result, ALPN_PAIR, ALPN_POOL, CALL_DEADLINE,
    HEARTBEAT, INVITE_TRIES, INVITE_VALID_SECS, LOST_AFTER, PROTOCOL_VERSION,
};
use hearth_store::{InviteTry, PoolMember, Store};

/// Why the head closed a link (QUIC application close codes; the reason text says it in words).
pub(crate) const CLOSE_NOT_PAIRED: u32 = 1;
pub(crate) const CLOSE_REMOVED: u32 = 2;
pub(crate) const CLOSE_VERSION: u32 = 3;
pub(crate) const CLOSE_REPLACED: u32 = 4;
pub(crate) const CLOSE_LOST: u32 = 5;
pub(crate) const CLOSE_SHUTDOWN: u32 = 6;
pub(crate) const CLOSE_BUSY: u32 = 7;

/// Connections whose peer is not proven yet (in the handshake, pairing, or before its key is
/// found among the members) held at once; more are refused at the door.
const UNPROVEN_AT_ONCE: usize = 32;
/// Pairing exchanges at once: each one is a guess at a code and a database write.
const PAIRING_AT_ONCE: usize = 4;
/// Pairing attempts one address may start per [`PAIRING_WINDOW`]: a code allows only a few
/// wrong tries, and this keeps one machine from spending them for everyone, or from probing
/// which codes are live, quickly.
const PAIRING_PER_ADDR: u32 = 6;
const PAIRING_WINDOW: Duration = Duration::from_secs(60);
/// `whois` sockets answered at once.
const WHOIS_AT_ONCE: usize = 16;
/// The pause after the TCP listener fails (out of file descriptors, mostly), rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What bounds the work that machines not proven yet can make the head do.
struct Limits {
    unproven: Arc<Semaphore>,
    pairing: Arc<Semaphore>,
    per_addr: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl Limits {
    fn new() -> Limits {
        Limits {
            unproven: Arc::new(Semaphore::new(UNPROVEN_AT_ONCE)),
            pairing: Arc::new(Semaphore::new(PAIRING_AT_ONCE)),
            per_addr: Mutex::default(),
        }
    }

    /// Counts one pairing attempt from `addr`; false when it has had its share this window.
    fn pairing_allowed(&self, addr: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let mut m = self.per_addr.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (since, _)| now.duration_since(*since) < PAIRING_WINDOW);
        let (_, n) = m.entry(addr).or_insert((now, 0));
        *n += 1;
        *n <= PAIRING_PER_ADDR
    }
}

/// Bytes sent to a member when its link opens, to measure the link's throughput.
pub const PROBE_BYTES: usize = 4 << 20;

/// Opens a pairing code in the household database: valid [`INVITE_VALID_SECS`], for
/// [`INVITE_TRIES`] tries, one machine. Works whether or not the head is running (a running head
/// reads invites from the database when a machine answers one).
pub fn invite(store: &Store) -> Result<Code> {
    let code = Code::generate();
    store.add_pool_invite(&code.id, &code.secret, INVITE_VALID_SECS, INVITE_TRIES)?;
    Ok(code)
}

/// A member whose link is up now.
#[derive(Debug, Clone)]
pub struct Live {
    pub key: String,
    pub name: String,
    pub link: LinkReport,
    pub since: Instant,
}

struct Link {
    conn: Connection,
    live: Live,
}

type Links = Arc<Mutex<HashMap<PublicKey, Link>>>;

/// The running head.
pub struct Head {
    endpoint: Endpoint,
    store: Arc<Store>,
    links: Links,
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Head {
    /// Binds the pool on `bind` (UDP for QUIC, and TCP on the same port for `whois`) and starts
    /// accepting. Log lines go through `tracing`.
    pub async fn start(key: SecretKey, bind: SocketAddr, store: Arc<Store>) -> Result<Head> {
        let endpoint = crate::endpoint(key, bind, &[ALPN_POOL, ALPN_PAIR]).await?;
        let addr = crate::bound_addr(&endpoint).ok_or(Error::Bind {
            addr: bind,
            why: "no socket was bound".into(),
        })?;
        let whois = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Bind {
                addr,
                why: format!("TCP for pairing: {e}"),
            })?;
        let links: Links = Arc::default();
        let id = endpoint.id();
        let mut tasks = vec![tokio::spawn(answer_whois(whois, id))];
        tasks.push(tokio::spawn(accept_loop(
            endpoint.clone(),
            store.clone(),
            links.clone(),
        )));
        Ok(Head {
            endpoint,
            store,
            links,
            addr,
            tasks,
        })
    }

    /// The head's node key.
    pub fn id(&self) -> PublicKey {
        self.endpoint.id()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Members whose link is up now, in the order they paired.
    pub fn live(&self) -> Vec<Live> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let mut live: Vec<Live> = links.values().map(|l| l.live.clone()).collect();
        live.sort_by(|a, b| a.name.cmp(&b.name));
        live
    }

    /// Removes a machine (by name or key start) from the household and cuts its link now.
    pub fn remove(&self, which: &str) -> Result<PoolMember> {
        let gone = self.store.remove_pool_member(which)?;
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.retain(|_, l| {
            if l.live.key == gone.key {
                l.conn
                    .close(VarInt::from_u32(CLOSE_REMOVED), b"removed by the keeper");
                false
            } else {
                true
            }
        });
        Ok(gone)
    }

    /// Closes every link and the endpoint.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        {
            let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            for l in links.values() {
                l.conn.close(
                    VarInt::from_u32(CLOSE_SHUTDOWN),
                    b"the head is shutting down",
                );
            }
        }
        self.endpoint.close().await;
    }
}

/// One line for anyone who connects over TCP: `hearth-pool VERSION KEY`.
async fn answer_whois(listener: tokio::net::TcpListener, id: PublicKey) {
    let line = format!("hearth-pool {PROTOCOL_VERSION} {}\n", key_hex(&id));
    let at_once = Arc::new(Semaphore::new(WHOIS_AT_ONCE));
    loop {
        let mut sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                tracing::debug!("pool: whois accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Full: the socket is dropped unanswered, and the asker tries again.
        let Ok(permit) = at_once.clone().try_acquire_owned() else {
            continue;
        };
        let line = line.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(CALL_DEADLINE, async {
                let _ = sock.write_all(line.as_bytes()).await;
                let _ = sock.shutdown().await;
            })
            .await;
        });
    }
}

async fn accept_loop(endpoint: Endpoint, store: Arc<Store>, links: Links) {
    let limits = Arc::new(Limits::new());
    while let Some(incoming) = endpoint.accept().await {
        let Ok(unproven) = limits.unproven.clone().try_acquire_owned() else {
            tracing::debug!("pool: refused a connection: too many unproven at once");
            incoming.refuse();
            continue;
        };
        let from = match incoming.remote_addr() {
            IncomingAddr::Ip(a) => Some(a.ip()),
            _ => None,
        };
        let (endpoint, store, links) = (endpoint.clone(), store.clone(), links.clone());
        let limits = limits.clone();
        tokio::spawn(async move {
            let conn = match incoming.accept() {
                Ok(accepting) => tokio::time::timeout(CALL_DEADLINE, accepting).await,
                Err(e) => {
                    tracing::debug!("pool: refused a connection: {e}");
                    return;
                }
            };
            let conn = match conn {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::debug!("pool: a handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("pool: a handshake took too long");
                    return;
                }
            };
            let peer = conn.remote_id();
            let result = if conn.alpn() == ALPN_PAIR {
                pair(&endpoint, &store, &limits, from, conn).await
            } else {
                link(&store, &links, unproven, conn).await
            };
            match result {
                Ok(()) => {}
                Err(Error::NotPaired) => tracing::info!(
                    "pool: refused {}: it is not paired with this household",
                    peer.fmt_short()
                ),
                Err(e) => tracing::info!("pool: {}: {e}", peer.fmt_short()),
            }
        });
    }
}

/// Pairing: one invite try, SPAKE2 over both keys, the joiner's proof first, then the head's.
/// An unknown code runs the same exchange with a password nobody holds and is refused at the
/// same step with the same words as a wrong one, so the exchange tells no one which codes exist.
async fn pair(
    endpoint: &Endpoint,
    store: &Arc<Store>,
    limits: &Limits,
    from: Option<IpAddr>,
    conn: Connection,
) -> Result<()> {
    let busy = |why: &'static [u8]| {
        conn.close(VarInt::from_u32(CLOSE_BUSY), why);
        Err(Error::Refused(String::from_utf8_lossy(why).into_owned()))
    };
    if !limits.pairing_allowed(from) {
        return busy(b"too many pairing attempts from this machine; wait a minute and try again");
    }
    let Ok(_pairing) = limits.pairing.clone().try_acquire_owned() else {
        return busy(b"the head is busy pairing other machines; try again in a minute");
    };
    let (mut send, mut recv) =
        crate::deadline("opening the pairing stream", CALL_DEADLINE, async {
            conn.accept_bi().await.map_err(|e| Error::Link {
                peer: "a pairing machine".into(),
                why: e.to_string(),
            })
        })
        .await?;
    let body = wire::recv_raw_max(
        &mut recv,
        "the pairing request",
        CALL_DEADLINE,
        wire::MAX_PAIR_FRAME,
    )
    .await?;
    if let Some(v) = Msg::version_of(&body) {
        if let Err(e) = check_version(v) {
            // Written from the joiner's side: it is the one that reads this.
            let msg = format!(
                "the head speaks pool protocol {PROTOCOL_VERSION}, this machine speaks {v}: \
                 run the same Hearth version on both"
            );
            refuse(&mut send, msg).await;
            return Err(e);
        }
    }
    let Msg::PairStart {
        invite,
        name,
        spake,
        ..
    } = wire::parse(&body)?
    else {
        return Err(Error::Protocol("expected a pairing request".into()));
    };
    let joiner = conn.remote_id();
    let head = endpoint.id();
    // Refused before a try is spent: a bad name or a bad message is no guess at the code.
    if let Err(e) = hearth_store::check_machine_name(&name) {
        refuse(&mut send, e.to_string()).await;
        return Err(Error::Refused(e.to_string()));
    }
    if joiner == head {
        let msg = "this is the head's own key: a machine cannot join its own pool";
        refuse(&mut send, msg.into()).await;
        return Err(Error::Refused(msg.into()));
    }
    let Ok(theirs) = hex::decode(&spake) else {
        refuse(&mut send, "the pairing message was unreadable".into()).await;
        return Err(Error::Protocol("bad pairing message".into()));
    };
    let found = {
        let store = store.clone();
        let invite = invite.clone();
        tokio::task::spawn_blocking(move || store.take_pool_invite_try(&invite))
            .await
            .map_err(|e| Error::Protocol(e.to_string()))?
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            refuse(&mut send, format!("the head could not read its codes: {e}")).await;
            return Err(e.into());
        }
    };
    let (secret, known) = match found {
        InviteTry::Secret(s) => (s, true),
        // Random, never stored or sent: the joiner's proof cannot match it.
        InviteTry::Unknown => (Code::generate().secret, false),
    };
    let (ex, mine) = Exchange::start(Side::Head, &secret, joiner.as_bytes(), head.as_bytes());
    wire::send(
        &mut send,
        &Msg::PairReply {
            spake: hex::encode(mine),
        },
        CALL_DEADLINE,
    )
    .await?;
    let shared = ex.finish(&theirs);
    let Msg::PairConfirm { tag } = wire::recv_max(
        &mut recv,
        "the pairing proof",
        CALL_DEADLINE,
        wire::MAX_PAIR_FRAME,
    )
    .await?
    else {
        return Err(Error::Protocol("expected the pairing proof".into()));
    };
    let proven = match &shared {
        Ok(shared) => known && hex::decode(&tag).map(|t| shared.check(&t)).unwrap_or(false),
        Err(_) => false,
    };
    let shared = match shared {
        Ok(shared) if proven => shared,
        _ => {
            let msg = "wrong code, or a code that is not valid any more (it expired, was used, \
                       or was mistyped too often): check it, or make a new one with \
                       `hearth pool invite`";
            refuse(&mut send, msg.into()).await;
            return Err(Error::Refused(format!(
                "a wrong or unknown code was tried ({invite:?})"
            )));
        }
    };
    let member = {
        let store = store.clone();
        let key = key_hex(&joiner);
        tokio::task::spawn_blocking(move || store.pair_pool_member(&invite, &key, &name))
            .await
            .map_err(|e| Error::Protocol(e.to_string()))?
    };
    let member = match member {
        Ok(m) => m,
        Err(e) => {
            refuse(&mut send, e.to_string()).await;
            return Err(e.into());
        }
    };
    wire::send(
        &mut send,
        &Msg::Paired {
            tag: hex::encode(shared.my_tag()),
        },
        CALL_DEADLINE,
    )
    .await?;
    let _ = send.finish();
    let _ = tokio::time::timeout(CALL_DEADLINE, send.stopped()).await;
    tracing::info!("pool: paired {:?} ({})", member.name, joiner.fmt_short());
    Ok(())
}

/// Sends `Refused` with `message` and waits (with a deadline) until the peer has it.
async fn refuse(send: &mut iroh::endpoint::SendStream, message: String) {
    let _ = wire::send(send, &Msg::Refused { message }, CALL_DEADLINE).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(CALL_DEADLINE, send.stopped()).await;
}

/// The member with node key `key`, read off the async threads (they serve the household's
/// page too, and the store is one connection behind a lock).
async fn lookup(store: &Arc<Store>, key: &str) -> Result<Option<PoolMember>> {
    let (store, key) = (store.clone(), key.to_string());
    tokio::task::spawn_blocking(move || store.pool_member(&key))
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?
        .map_err(Into::into)
}

/// A paired member's link, for as long as it lasts. `unproven` is held until the key is found
/// among the members.
async fn link(
    store: &Arc<Store>,
    links: &Links,
    unproven: tokio::sync::OwnedSemaphorePermit,
    conn: Connection,
) -> Result<()> {
    let peer = conn.remote_id();
    let key = key_hex(&peer);
    let found = lookup(store, &key).await;
    let Some(member) = found? else {
        conn.close(
            VarInt::from_u32(CLOSE_NOT_PAIRED),
            b"this machine is not paired with this household; pair it with `hearth node join CODE`",
        );
        return Err(Error::NotPaired);
    };
    drop(unproven);
    let (mut send, mut recv) = crate::deadline("opening the link", CALL_DEADLINE, async {
        conn.accept_bi().await.map_err(|e| Error::Link {
            peer: member.name.clone(),
            why: e.to_string(),
        })
    })
    .await?;
    let body = wire::recv_raw(&mut recv, "the member's hello", CALL_DEADLINE).await?;
    let theirs = Msg::version_of(&body).unwrap_or(0);
    if let Err(e) = check_version(theirs) {
        let reason = format!(
            "the head speaks pool protocol {PROTOCOL_VERSION}, this machine speaks {theirs}: \
             run the same Hearth version on both"
        );
        conn.close(VarInt::from_u32(CLOSE_VERSION), reason.as_bytes());
        return Err(e);
    }
    let Msg::Hello { report, .. } = wire::parse(&body)? else {
        return Err(Error::Protocol("expected a hello".into()));
    };
    wire::send(
        &mut send,
        &Msg::Welcome {
            version: PROTOCOL_VERSION,
        },
        CALL_DEADLINE,
    )
    .await?;
    let addr = conn.paths().iter().find_map(|p| match p.remote_addr() {
        iroh::TransportAddr::Ip(a) => Some(a.to_string()),
        _ => None,
    });
    let mut live = Live {
        key: key.clone(),
        name: member.name.clone(),
        link: LinkReport {
            report,
            rtt_ms: None,
            throughput_bytes_per_s: None,
            addr,
        },
        since: Instant::now(),
    };
    // One link per machine: a member that reconnects replaces its old link, never a ghost.
    {
        let mut map = links.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = map.insert(
            peer,
            Link {
                conn: conn.clone(),
                live: live.clone(),
            },
        ) {
            old.conn.close(
                VarInt::from_u32(CLOSE_REPLACED),
                b"replaced by a newer link",
            );
        }
    }
    tracing::info!("pool: {} joined ({})", member.name, peer.fmt_short());
    // Measured beside the heartbeats, so a slow link is measured, not taken for a lost one.
    let probe = {
        let conn = conn.clone();
        tokio::spawn(async move { measure_throughput(&conn).await })
    };
    let result = heartbeats(store, links, &conn, &mut send, &mut recv, &mut live, probe).await;
    {
        let mut map = links.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&peer)
            .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
        {
            map.remove(&peer);
        }
    }
    match &result {
        Err(Error::Removed) => tracing::info!("pool: {} was removed; cut off", member.name),
        Err(e) => tracing::info!("pool: {} left: {e}", member.name),
        Ok(()) => tracing::info!("pool: {} left", member.name),
    }
    Ok(())
}

/// Sends [`PROBE_BYTES`] and times them until the member says it has them all.
async fn measure_throughput(conn: &Connection) -> Result<f64> {
    crate::deadline("measuring the link", CALL_DEADLINE, async {
        let err = |e: &dyn std::fmt::Display| Error::Link {
            peer: "member".into(),
            why: e.to_string(),
        };
        let start = Instant::now();
        let (mut s, mut r) = conn.open_bi().await.map_err(|e| err(&e))?;
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..PROBE_BYTES / chunk.len() {
            s.write_all(&chunk).await.map_err(|e| err(&e))?;
        }
        s.finish().map_err(|e| err(&e))?;
        let ack = r.read_to_end(16).await.map_err(|e| err(&e))?;
        if ack.as_slice() != b"ok" {
            return Err(Error::Protocol(
                "the member did not confirm the probe".into(),
            ));
        }
        Ok(PROBE_BYTES as f64 / start.elapsed().as_secs_f64().max(1e-6))
    })
    .await
}

async fn heartbeats(
    store: &Arc<Store>,
    links: &Links,
    conn: &Connection,
    send: &mut iroh::endpoint::SendStream,
    recv: &mut iroh::endpoint::RecvStream,
    live: &mut Live,
    probe: tokio::task::JoinHandle<Result<f64>>,
) -> Result<()> {
    let peer = conn.remote_id();
    let mut probe = Some(probe);
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Removed while linked (by another process: `hearth pool remove`): cut off now.
        let still = lookup(store, &live.key).await?;
        if still.is_none() {
            conn.close(VarInt::from_u32(CLOSE_REMOVED), b"removed by the keeper");
            return Err(Error::Removed);
        }
        seq += 1;
        let sent = Instant::now();
        let answer = async {
            wire::send(send, &Msg::Ping { seq }, LOST_AFTER).await?;
            wire::recv(recv, "a heartbeat", LOST_AFTER).await
        };
        let available = match crate::deadline("a heartbeat", LOST_AFTER, answer).await {
            Ok(Msg::Pong {
                seq: s,
                available_bytes,
            }) if s == seq => available_bytes,
            Ok(_) => return Err(Error::Protocol("a heartbeat was answered wrongly".into())),
            Err(e) => {
                if let Some(reason) = conn.close_reason() {
                    return Err(Error::Link {
                        peer: live.name.clone(),
                        why: reason.to_string(),
                    });
                }
                conn.close(VarInt::from_u32(CLOSE_LOST), b"no heartbeat");
                return Err(e);
            }
        };
        live.link.rtt_ms = Some(sent.elapsed().as_secs_f64() * 1e3);
        if probe.as_ref().is_some_and(|p| p.is_finished()) {
            if let Some(p) = probe.take() {
                live.link.throughput_bytes_per_s = p.await.ok().and_then(|r| r.ok());
            }
        }
        live.link.report.available_bytes = available;
        {
            let mut map = links.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = map.get_mut(&peer) {
                l.live = live.clone();
            }
        }
        let json = serde_json::to_string(&live.link).ok();
        let store = store.clone();
        let key = live.key.clone();
        let _ = tokio::task::spawn_blocking(move || store.pool_member_seen(&key, json.as_deref()))
            .await;
    }
}
