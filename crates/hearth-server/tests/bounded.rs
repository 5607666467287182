//! Bounded work: a hostile model or client cannot hold up the server. These run on a tiny
//! random-weight model, so they need no download.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::EngineOptions;
use hearth_model::chat::ChatTemplate;
use hearth_model::testing::TinySpec;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::listen::{self, ListenOptions};
use hearth_server::{AppState, Auth, ServeModel, ServeOptions};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tower::ServiceExt;

const ID: &str = "tiny";

/// A one-layer model with a small vocabulary; `template` replaces the file's own.
fn tiny_model(template: Option<ChatTemplate>) -> ServeModel {
    let spec = TinySpec {
        n_layer: 1,
        chat_template: Some("{% for m in messages %}{{ m.content }}{% endfor %}".into()),
        ..TinySpec::new("llama")
    };
    let gguf = hearth_gguf::Gguf::from_bytes(spec.build()).expect("GGUF");
    let tokenizer = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
    let own = ChatTemplate::from_gguf(gguf.metadata(), &tokenizer).expect("template");
    ServeModel {
        id: ID.into(),
        model: Model::from_gguf(gguf).expect("model"),
        tokenizer,
        template: template.or(own),
        defaults: SamplerConfig::default(),
        draft: None,
    }
}

fn tiny_state(template: Option<ChatTemplate>, body_limit: usize) -> Arc<AppState> {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    AppState::new(
        tiny_model(template),
        None,
        ServeOptions {
            engine: EngineOptions {
                ctx: 256,
                threads: 1,
                max_seqs: 2,
                ..EngineOptions::default()
            },
            max_queue: 16,
            body_limit,
            ..ServeOptions::default()
        },
        Auth::new(loopback, Vec::new()).expect("loopback is allowed"),
    )
}

async fn call(app: Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.oneshot(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

/// Lets spawned tasks run as far as they can on this (single) thread.
async fn let_others_run() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// A runtime with one async thread and one blocking thread, so a test can hold the blocking
/// thread and see that work sent there waits while the async thread answers others.
fn one_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .expect("runtime")
}

/// Occupies the runtime's only blocking thread until the returned sender is dropped.
async fn hold_blocking_thread() -> std::sync::mpsc::Sender<()> {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _ = held.send(());
        let _ = released.recv();
    });
    holding.await.expect("the blocking thread is held");
    release
}

/// Sends each request to `app` at once, then checks that `/health` answers while none of them
/// has finished: their heavy part waits for the held blocking thread, so any of them done by
/// then did it on the async thread. Returns their answers once the thread is released.
async fn health_answers_while_these_run(
    app: &Router,
    requests: Vec<Request<Body>>,
) -> Vec<(StatusCode, String)> {
    let release = hold_blocking_thread().await;
    let running: Vec<_> = requests
        .into_iter()
        .map(|r| tokio::spawn(call(app.clone(), r)))
        .collect();
    let_others_run().await;
    let (status, _) = call(app.clone(), get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    let done = running.iter().filter(|r| r.is_finished()).count();
    assert_eq!(
        done, 0,
        "{done} request(s) did their work on the async thread, before /health could answer"
    );
    drop(release);
    let mut answers = Vec::new();
    for r in running {
        answers.push(r.await.expect("task"));
    }
    answers
}

/// Two chats on a model whose template spins used to hold both async workers; now templates
/// run on blocking threads, `/health` answers meanwhile, and each chat ends with an error that
/// says what happened.
#[test]
fn hostile_template_requests_leave_health_answering() {
    one_thread_runtime().block_on(async {
        let spinning =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let template = ChatTemplate::new(spinning, "", "").expect("compiles");
        let app = hearth_server::router(tiny_state(Some(template), 1 << 20));
        let body = json!({"model": ID, "messages": [{"role": "user", "content": "Hi"}]});
        let chats = (0..2)
            .map(|_| post("/v1/chat/completions", body.to_string()))
            .collect();
        for (status, body) in health_answers_while_these_run(&app, chats).await {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(
                body.contains("this model's chat template did too much work"),
                "{body}"
            );
        }
    });
}

/// Six 5.7 MB bodies at once stalled `/health` for seconds: they were parsed on the async
/// workers. Now bodies over 64 KiB are parsed (and long prompts tokenized) on blocking threads.
#[test]
fn large_bodies_leave_health_answering() {
    one_thread_runtime().block_on(async {
        let app = hearth_server::router(tiny_state(None, 8 << 20));
        let text = "word ".repeat(300_000);
        let mut requests = Vec::new();
        for _ in 0..3 {
            // Parsed, then refused for naming another model: all the work is the parse.
            let chat = json!({"model": "another-model",
                "messages": [{"role": "user", "content": text}]});
            requests.push(post("/v1/chat/completions", chat.to_string()));
        }
        let completion = json!({"model": ID, "prompt": text, "max_tokens": 1});
        requests.push(post("/v1/completions", completion.to_string()));
        let embedding = json!({"model": "another-model", "input": text});
        requests.push(post("/v1/embeddings", embedding.to_string()));
        let answers = health_answers_while_these_run(&app, requests).await;
        for (status, body) in &answers[..3] {
            assert_eq!(*status, StatusCode::NOT_FOUND, "{body}");
            assert!(body.contains("another-model"), "{body}");
        }
        // Parsed, tokenized (on a blocking thread too) and answered.
        let (status, body) = &answers[3];
        assert_eq!(*status, StatusCode::OK, "{body}");
        let (status, body) = &answers[4];
        assert_eq!(*status, StatusCode::NOT_FOUND, "{body}");
    });
}

// ---- Connections (listen.rs) ----

/// Serves `app` on a loopback port with `opts`; send on the channel to shut down.
async fn start(
    app: Router,
    opts: ListenOptions,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(listen::serve(listener, app, opts, async move {
        let _ = rx.await;
    }));
    (addr, tx, server)
}

/// Options with every timeout long, so only what a test shortens can trip.
fn patient() -> ListenOptions {
    ListenOptions {
        header_timeout: Duration::from_secs(60),
        stall_timeout: Duration::from_secs(60),
        max_per_address: 64,
        max_connections: 512,
    }
}

/// A connection to `to` from the loopback address `from` (any of 127.0.0.0/8).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    socket.connect(to).await.expect("connect")
}

/// Everything the server sends until it closes the connection. The bound only keeps a broken
/// server from hanging the test.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf))
        .await
        .expect("the server should answer and close the connection")
        .expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

/// `GET path` on a fresh connection from `from`, asking the server to close afterwards.
async fn http_get(from: &str, to: SocketAddr, path: &str) -> String {
    let mut s = connect_from(from, to).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    read_to_close(&mut s).await
}

/// Routes for the connection tests: the caller's address, a slow stream, an upload and a large
/// download.
fn probe_app() -> Router {
    use axum::extract::ConnectInfo;
    use axum::response::sse::{Event, Sse};
    use axum::routing::{get, post};
    Router::new()
        .route(
            "/whoami",
            get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.to_string() }),
        )
        .route(
            "/stream",
            get(|| async {
                // Pauses between events longer than every timeout of `quick()`.
                let events = futures_util::stream::unfold(0, |i| async move {
                    if i == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let event = Event::default().data(format!("event {i}"));
                    Some((Ok::<_, std::convert::Infallible>(event), i + 1))
                });
                Sse::new(events)
            }),
        )
        .route(
            "/upload",
            post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }),
        )
        .route("/big", get(|| async { vec![b'x'; 64 << 20] }))
}

/// Timeouts far shorter than the pauses of `/stream`.
fn quick() -> ListenOptions {
    ListenOptions {
        header_timeout: Duration::from_millis(100),
        stall_timeout: Duration::from_millis(100),
        ..patient()
    }
}

/// 1,100 idle connections under a 1,024-descriptor limit left nothing for `/health`. Now one
/// address gets its cap and a 503 beyond it, and `/health` from another address answers.
#[tokio::test]
async fn idle_connections_from_one_address_cannot_starve_health() {
    let cap = 8;
    let opts = ListenOptions {
        max_per_address: cap,
        ..patient()
    };
    let (addr, stop, server) = start(hearth_server::router(tiny_state(None, 1 << 20)), opts).await;
    let mut idle = Vec::new();
    for _ in 0..cap {
        idle.push(connect_from("127.0.0.1", addr).await);
    }
    for _ in 0..4 {
        let mut over = connect_from("127.0.0.1", addr).await;
        let answer = read_to_close(&mut over).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.contains("Too many connections from your address"),
            "{answer}"
        );
    }
    let health = http_get("127.0.0.2", addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    drop(idle);
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

/// Beyond the global cap (kept below the open-file limit) every address gets a 503, and a
/// place that frees up is given to the next connection.
#[tokio::test]
async fn past_the_global_cap_connections_get_503_until_one_closes() {
    let opts = ListenOptions {
        max_connections: 4,
        ..patient()
    };
    let (addr, stop, server) = start(probe_app(), opts).await;
    let mut idle = Vec::new();
    for i in 0..4 {
        idle.push(connect_from(&format!("127.0.0.{}", i + 1), addr).await);
    }
    let refused = http_get("127.0.0.9", addr, "/whoami").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("as many connections as it can (4)"),
        "{refused}"
    );
    idle.pop();
    assert!(eventually_served(addr, "127.0.0.9").await);
    drop(idle);
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

/// Asks `/whoami` from `from` until the server answers it (not a 503), a few hundred times
/// at most.
async fn eventually_served(addr: SocketAddr, from: &str) -> bool {
    for _ in 0..300 {
        if http_get(from, addr, "/whoami")
            .await
            .starts_with("HTTP/1.1 200")
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A client that never finishes its request head, and one that stays idle after an answer,
/// are both closed after the header timeout.
#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let (addr, stop, server) = start(probe_app(), quick()).await;
    let mut slow = connect_from("127.0.0.1", addr).await;
    slow.write_all(b"GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    let answer = read_to_close(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");

    let mut idle = connect_from("127.0.0.1", addr).await;
    idle.write_all(b"GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    // The connection stays open for another request, then closes once idle too long.
    let answer = read_to_close(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

/// A request body that stops arriving ends the request, instead of holding the connection.
#[tokio::test]
async fn a_request_body_that_stops_arriving_is_cut_off() {
    let (addr, stop, server) = start(probe_app(), quick()).await;
    let mut s = connect_from("127.0.0.1", addr).await;
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await
    .expect("write");
    let answer = read_to_close(&mut s).await;
    assert!(!answer.contains("100 bytes"), "{answer}");
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

/// A client that stops reading a large answer loses its connection (and its place under the
/// cap) after the stall timeout.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection() {
    let opts = ListenOptions {
        max_per_address: 1,
        ..quick()
    };
    let (addr, stop, server) = start(probe_app(), opts).await;
    let mut reader = connect_from("127.0.0.1", addr).await;
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    // Not reading: the server's writes stall once the socket buffers are full. Its place is
    // free again once the server has given up on it...
    assert!(eventually_served(addr, "127.0.0.1").await);
    // ...and the answer it got is cut short.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(60), reader.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert!(got < 64 << 20, "the whole answer arrived ({got} bytes)");
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

/// A streamed reply whose events are further apart than every timeout runs to its end, and
/// handlers still see the client's address.
#[tokio::test]
async fn a_streaming_reply_is_not_cut_by_the_timeouts() {
    let (addr, stop, server) = start(probe_app(), quick()).await;
    let stream = http_get("127.0.0.3", addr, "/stream").await;
    for i in 0..5 {
        assert!(stream.contains(&format!("data: event {i}")), "{stream}");
    }
    let who = http_get("127.0.0.3", addr, "/whoami").await;
    assert!(who.contains("\r\n\r\n127.0.0.3:"), "{who}");
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

/// Shutting down lets a request in flight finish, closes idle connections, then stops
/// serving.
#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    use axum::routing::get;
    let (entered_tx, mut entered) = tokio::sync::mpsc::channel::<()>(1);
    let app = probe_app().route(
        "/slow-entered",
        get(move || {
            let entered_tx = entered_tx.clone();
            async move {
                let _ = entered_tx.send(()).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finished"
            }
        }),
    );
    let (addr, stop, server) = start(app, patient()).await;
    let mut idle = connect_from("127.0.0.1", addr).await;
    idle.write_all(b"GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.expect("answer");
    let slow = tokio::spawn(http_get("127.0.0.1", addr, "/slow-entered"));
    entered
        .recv()
        .await
        .expect("the slow request reached its handler");
    let _ = stop.send(());
    let answer = slow.await.expect("task");
    assert!(answer.ends_with("finished"), "{answer}");
    // The idle keep-alive connection is closed by the shutdown (well before its timeout).
    let rest = read_to_close(&mut idle).await;
    assert!(rest.contains("127.0.0.1:"), "{rest}");
    server.await.expect("task").expect("serve");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
