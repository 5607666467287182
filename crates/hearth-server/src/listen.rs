//! Accepting connections within bounds. `axum::serve` keeps every connection for as long as the
//! client likes: 1,100 idle connections under a 1,024-descriptor limit left nothing for
//! `/health`. This loop serves the same router over hyper with:
//! - a **header timeout**: a client has [`ListenOptions::header_timeout`] to send a request's
//!   head, counted from connecting or from the end of its previous response, so it also closes
//!   idle keep-alive connections (hyper's timer does both);
//! - a **stall timeout**: a request body that stops arriving, or a client that stops reading its
//!   response, gets [`ListenOptions::stall_timeout`] without progress. A streamed reply that is
//!   sending, or waiting for its next token, is never cut: only a write the client does not
//!   take counts;
//! - a **cap per client address** and a **global cap** below the open-file limit; a connection
//!   beyond either is answered `503` and closed at once;
//! - **graceful shutdown**: once the shutdown future resolves, no connection is accepted, idle
//!   ones close, and requests in flight finish.
//!
//! Handlers still see `ConnectInfo<SocketAddr>`, as with `into_make_service_with_connect_info`.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// How connections are bounded.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// Time to send a request's head, from connecting or from the end of the previous response
    /// (so also how long an idle keep-alive connection stays open).
    pub header_timeout: Duration,
    /// Time without progress while a request body arrives or a response waits for the client
    /// to read it.
    pub stall_timeout: Duration,
    /// Open connections one client address may hold. Browsers open about six per server;
    /// every program on this machine shares the loopback address.
    pub max_per_address: usize,
    /// Open connections in all, kept below the open-file limit so the model file, the database
    /// and `/health` always find a descriptor.
    pub max_connections: usize,
}

/// Descriptors kept back from connections for everything else the server opens: the model
/// files, the database, refusals being answered ([`MAX_LINGERING`]).
const RESERVED_FILES: u64 = 256;

/// The most connections ever allowed, whatever the open-file limit: a household's devices need
/// a few dozen, and each connection costs memory.
const MAX_CONNECTIONS: u64 = 4096;

impl ListenOptions {
    /// The defaults for a process that may open `limit` files.
    pub fn for_open_files(limit: u64) -> ListenOptions {
        let max_connections = limit
            .saturating_sub(RESERVED_FILES)
            .clamp(16, MAX_CONNECTIONS) as usize;
        ListenOptions {
            header_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(60),
            // Under a tiny limit, one address still must not take every place.
            max_per_address: 64.min(max_connections / 2),
            max_connections,
        }
    }
}

impl Default for ListenOptions {
    /// For the common default limit of 1,024 open files.
    fn default() -> ListenOptions {
        ListenOptions::for_open_files(1024)
    }
}

/// Raises this process's open-file soft limit to its hard limit and returns the new soft
/// limit. Many systems start processes at 1,024, far below what they allow.
pub fn raise_open_file_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Serves `app` on `listener` within `opts` until `shutdown` resolves, then lets requests in
/// flight finish and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ListenOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let counts = Arc::new(Counts::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot accept a connection: {e}");
                // Out of descriptors (or memory) the error repeats at once; give the
                // connections that are closing a moment instead of spinning.
                if !is_per_connection(&e) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let slot = match counts.admit(remote.ip(), &opts) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::warn!("refused a connection from {remote}: {}", refusal.reason());
                refuse(stream, &refusal, &counts);
                continue;
            }
        };
        // Streamed tokens are small writes; Nagle's algorithm would hold them back.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(StallIo::new(stream, opts.stall_timeout));
        let service = Service {
            app: app.clone(),
            remote,
            stall: opts.stall_timeout,
        };
        let conn = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!("connection from {remote} ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Accept errors that concern one connection only (it was reset before we took it), after
/// which the next accept can go ahead at once.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Answers `503` on a connection over a cap, then closes it.
fn refuse(stream: TcpStream, refusal: &Refusal, counts: &Arc<Counts>) {
    let body = format!("{}\n", refusal.message());
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    match counts.linger() {
        // Closing a socket whose request is still unread makes the kernel reset it, and the
        // client may lose the answer; so the request is read (and dropped) first, briefly.
        Some(lingering) => {
            tokio::spawn(async move {
                let _lingering = lingering;
                let _ = tokio::time::timeout(LINGER, answer_and_close(stream, response)).await;
            });
        }
        // Too many refusals lingering already: answer if the socket takes it at once, and
        // close. A fresh socket's send buffer is empty, so one non-blocking write usually
        // takes the whole answer.
        None => {
            if let Ok(std) = stream.into_std() {
                let _ = (&std).write(response.as_bytes());
            }
        }
    }
}

/// How long a refused connection may take to be answered and closed.
const LINGER: Duration = Duration::from_secs(2);

/// Refused connections being answered at once, at most; they hold descriptors beyond the
/// caps, out of [`RESERVED_FILES`].
const MAX_LINGERING: usize = 64;

async fn answer_and_close(mut stream: TcpStream, response: String) -> io::Result<()> {
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut read = 0;
    // Until the client closes, up to a request's worth.
    while read < 64 << 10 {
        match stream.read(&mut sink).await? {
            0 => break,
            n => read += n,
        }
    }
    Ok(())
}

/// Why a connection was refused.
enum Refusal {
    PerAddress { ip: IpAddr, cap: usize },
    Global { cap: usize },
}

impl Refusal {
    fn reason(&self) -> String {
        match self {
            Refusal::PerAddress { ip, cap } => format!("{ip} already has {cap} connections open"),
            Refusal::Global { cap } => format!("all {cap} connections are in use"),
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::PerAddress { cap, .. } => format!(
                "Too many connections from your address: Hearth allows {cap} at once. Close some \
                 tabs or programs that talk to Hearth, then try again."
            ),
            Refusal::Global { cap } => format!(
                "Hearth is holding as many connections as it can ({cap}). Try again in a few \
                 seconds."
            ),
        }
    }
}

/// Open connections, in all and per client address, and refusals being answered.
#[derive(Default)]
struct Counts {
    inner: Mutex<CountsInner>,
    lingering: AtomicUsize,
}

#[derive(Default)]
struct CountsInner {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Counts {
    /// A place for one more refusal to be answered, if there is one.
    fn linger(self: &Arc<Self>) -> Option<Lingering> {
        let before = self.lingering.fetch_add(1, Ordering::Relaxed);
        let place = Lingering(self.clone());
        (before < MAX_LINGERING).then_some(place)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr, opts: &ListenOptions) -> Result<Slot, Refusal> {
        // An IPv4 client on a dual-stack socket is one address, however it is written.
        let ip = ip.to_canonical();
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= opts.max_connections {
            return Err(Refusal::Global {
                cap: opts.max_connections,
            });
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= opts.max_per_address {
            return Err(Refusal::PerAddress {
                ip,
                cap: opts.max_per_address,
            });
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One refusal being answered; gives its place back when done.
struct Lingering(Arc<Counts>);

impl Drop for Lingering {
    fn drop(&mut self) {
        self.0.lingering.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One admitted connection; gives its place back when the connection ends.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The router for one connection: bodies under the stall timeout, the client's address in
/// `ConnectInfo`.
#[derive(Clone)]
struct Service {
    app: Router,
    remote: SocketAddr,
    stall: Duration,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let mut req = req.map(|body| StallBody::new(body, self.stall));
        req.extensions_mut().insert(ConnectInfo(self.remote));
        let mut app = self.app.clone();
        Box::pin(async move { tower_service::Service::call(&mut app, req).await })
    }
}

/// A stall: a timer that starts when an operation first waits and stops when it progresses.
struct Stall {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Stall {
    fn new(limit: Duration) -> Stall {
        Stall { limit, timer: None }
    }

    /// Ends the stall: the operation progressed.
    fn progressed(&mut self) {
        self.timer = None;
    }

    /// True once the operation has waited `limit` without progress.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        self.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

/// A request body that fails once it stops arriving for the stall timeout.
struct StallBody {
    inner: Incoming,
    stall: Stall,
}

impl StallBody {
    fn new(inner: Incoming, limit: Duration) -> StallBody {
        StallBody {
            inner,
            stall: Stall::new(limit),
        }
    }
}

impl Body for StallBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall.progressed();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending if this.stall.expired(cx) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body stopped arriving",
            )
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail once the client has taken nothing for the stall timeout.
/// Reads are left alone: hyper keeps a read open during a response to notice a client that
/// leaves, and a long streamed reply must not end because the client is quietly listening.
struct StallIo {
    inner: TcpStream,
    stall: Stall,
}

impl StallIo {
    fn new(inner: TcpStream, limit: Duration) -> StallIo {
        StallIo {
            inner,
            stall: Stall::new(limit),
        }
    }

    fn write_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.stall.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if self.stall.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for StallIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_with(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_with(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write_with(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
        let soft = raise_open_file_limit().expect("setrlimit");
        assert_eq!(soft, hard);
        assert_eq!(rlimit::Resource::NOFILE.get().expect("getrlimit").0, hard);
    }

    #[test]
    fn the_global_cap_stays_below_the_open_file_limit() {
        for limit in [256, 1024, 65_536, u64::MAX] {
            let o = ListenOptions::for_open_files(limit);
            assert!((o.max_connections as u64) < limit, "{limit}: {o:?}");
            assert!(o.max_per_address < o.max_connections, "{limit}: {o:?}");
        }
    }
}
