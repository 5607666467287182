//! Messages on a stream: a 4-byte big-endian length, then that much JSON. Every read and write
//! has a deadline, and a frame has a size limit, so a peer can neither hang nor flood us.

use std::time::Duration;

use iroh::endpoint::{RecvStream, SendStream};
use serde::{Deserialize, Serialize};

use crate::{deadline, Error, Report, Result};

/// The largest message (a report with many GPUs is far below it).
const MAX_FRAME: usize = 64 * 1024;

/// The largest pairing message: the peer is not proven yet, so it gets far less (a name of 60
/// characters, a code and a SPAKE2 message fit many times over).
pub(crate) const MAX_PAIR_FRAME: usize = 2 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Msg {
    /// Joiner → head: which invite, its name, its SPAKE2 message (hex).
    PairStart {
        version: u32,
        invite: String,
        name: String,
        spake: String,
    },
    /// Head → joiner: the head's SPAKE2 message.
    PairReply { spake: String },
    /// Joiner → head: proof the joiner derived the key.
    PairConfirm { tag: String },
    /// Head → joiner: paired, and the head's proof.
    Paired { tag: String },
    /// Member → head, first on a link.
    Hello { version: u32, report: Report },
    /// Head → member: the link is up.
    Welcome { version: u32 },
    /// Head → member heartbeat.
    Ping { seq: u64 },
    /// Member → head: the answer, with memory free now.
    Pong { seq: u64, available_bytes: u64 },
    /// Either way: no, and why, in words.
    Refused { message: String },
}

impl Msg {
    /// The protocol version a first message carries, read before the rest so a peer of
    /// another version (whose messages may look different) still gets a clear answer.
    pub(crate) fn version_of(body: &[u8]) -> Option<u32> {
        #[derive(Deserialize)]
        struct V {
            version: u32,
        }
        serde_json::from_slice::<V>(body).ok().map(|v| v.version)
    }
}

fn link(why: impl std::fmt::Display) -> Error {
    Error::Link {
        peer: "the other machine".into(),
        why: why.to_string(),
    }
}

pub(crate) async fn send(s: &mut SendStream, msg: &Msg, after: Duration) -> Result<()> {
    let body = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
    deadline("sending to the other machine", after, async {
        s.write_all(&(body.len() as u32).to_be_bytes())
            .await
            .map_err(link)?;
        s.write_all(&body).await.map_err(link)
    })
    .await
}

/// Reads one frame's bytes.
pub(crate) async fn recv_raw(
    r: &mut RecvStream,
    what: &'static str,
    after: Duration,
) -> Result<Vec<u8>> {
    recv_raw_max(r, what, after, MAX_FRAME).await
}

/// Reads one frame's bytes, refusing one longer than `max`.
pub(crate) async fn recv_raw_max(
    r: &mut RecvStream,
    what: &'static str,
    after: Duration,
    max: usize,
) -> Result<Vec<u8>> {
    deadline(what, after, async {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await.map_err(link)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > max {
            return Err(Error::Protocol(format!(
                "a message of {len} bytes is too long"
            )));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await.map_err(link)?;
        Ok(body)
    })
    .await
}

pub(crate) fn parse(body: &[u8]) -> Result<Msg> {
    serde_json::from_slice(body).map_err(|e| Error::Protocol(format!("unreadable message: {e}")))
}

pub(crate) async fn recv(r: &mut RecvStream, what: &'static str, after: Duration) -> Result<Msg> {
    recv_max(r, what, after, MAX_FRAME).await
}

/// [`recv`], refusing a frame longer than `max`.
pub(crate) async fn recv_max(
    r: &mut RecvStream,
    what: &'static str,
    after: Duration,
    max: usize,
) -> Result<Msg> {
    let body = recv_raw_max(r, what, after, max).await?;
    match parse(&body)? {
        Msg::Refused { message } => Err(Error::Refused(message)),
        m => Ok(m),
    }
}
