//! Issue 12's browser and login findings, one test each, named after the failure, through
//! `Router::oneshot` on the real SmolLM2 model (the peer address a socket would give is set on
//! each request as `ConnectInfo`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::EngineOptions;
use hearth_model::chat::ChatTemplate;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::household::HouseholdOptions;
use hearth_server::{Access, AppState, Auth, ServeModel, ServeOptions};
use hearth_store::Store;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const CODE: &str = "424242";
const HOUSEHOLD: &str = r#"{"household": "The Smiths", "name": "Ann", "password": "correct horse", "setup_code": "424242"}"#;

fn serve_model() -> ServeModel {
    let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 for tests");
    let model = Model::open(&path).expect("model");
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).expect("tokenizer");
    let template = ChatTemplate::from_gguf(md, &tokenizer).expect("template");
    ServeModel {
        id: "smollm2-135m".into(),
        model,
        tokenizer,
        template,
        defaults: SamplerConfig::greedy(),
        draft: None,
    }
}

fn options(access: Access) -> ServeOptions {
    ServeOptions {
        engine: EngineOptions {
            ctx: 256,
            threads: 1,
            max_seqs: 1,
            ..EngineOptions::default()
        },
        access,
        ..ServeOptions::default()
    }
}

/// A household server on loopback that, like `hearth serve`, wants the setup code.
fn app_with(store: Arc<Store>, access: Access) -> Router {
    let state = AppState::with_household(
        serve_model(),
        None,
        options(access),
        Auth::household("127.0.0.1:4314".parse().expect("addr"), vec![]),
        Some(HouseholdOptions {
            store,
            setup_code: Some(CODE.into()),
            admin: None,
            reply_tokens: hearth_server::household::DEFAULT_REPLY_TOKENS,
        }),
    );
    hearth_server::router(state)
}

fn app() -> Router {
    app_with(
        Arc::new(Store::open_in_memory().expect("store")),
        Access::default(),
    )
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

/// One request: `headers` as given, `from` as the peer address.
async fn call(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    from: &str,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::from(body.to_string())).expect("request");
    let from: SocketAddr = from.parse().expect("peer address");
    req.extensions_mut().insert(ConnectInfo(from));
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

const LOCAL: &str = "127.0.0.1:50000";
const JSON: (&str, &str) = ("content-type", "application/json");
const HOST: (&str, &str) = ("host", "127.0.0.1:4314");

async fn set_up(app: &Router) -> (String, String) {
    let r = call(app, "POST", "/api/setup", &[HOST, JSON], HOUSEHOLD, LOCAL).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cookie = r.headers[header::SET_COOKIE]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let csrf = r.body["csrf"].as_str().expect("csrf").to_string();
    (cookie, csrf)
}

async fn set_up_needed(app: &Router) -> bool {
    call(app, "GET", "/api/state", &[HOST], "", LOCAL)
        .await
        .body["setup_needed"]
        == json!(true)
}

#[tokio::test]
async fn any_web_page_cannot_take_over_setup() {
    let app = app();
    // What a foreign page's no-cors fetch sends: text/plain, its own Origin.
    let r = call(
        &app,
        "POST",
        "/api/setup",
        &[
            HOST,
            ("content-type", "text/plain"),
            ("origin", "http://evil.example"),
        ],
        HOUSEHOLD,
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // The same without an Origin (a browser that hides it still says cross-site).
    let r = call(
        &app,
        "POST",
        "/api/setup",
        &[HOST, JSON, ("sec-fetch-site", "cross-site")],
        HOUSEHOLD,
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // A form or text/plain body is refused even with no browser headers at all.
    let r = call(
        &app,
        "POST",
        "/api/setup",
        &[HOST, ("content-type", "text/plain")],
        HOUSEHOLD,
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
    // On loopback too, setup needs the code printed in the terminal.
    let no_code = r#"{"household": "X", "name": "Eve", "password": "eve-password"}"#;
    let r = call(&app, "POST", "/api/setup", &[HOST, JSON], no_code, LOCAL).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["param"], "setup_code");
    assert!(set_up_needed(&app).await, "nobody became the owner");
    // The keeper, from the page's own origin, with the code.
    let r = call(
        &app,
        "POST",
        "/api/setup",
        &[HOST, JSON, ("origin", "http://127.0.0.1:4314")],
        HOUSEHOLD,
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn dns_rebinding_names_get_421_and_how_to_allow_them() {
    let app = app();
    for path in ["/", "/api/state", "/v1/models", "/health"] {
        let r = call(
            &app,
            "GET",
            path,
            &[("host", "evil.example:4314")],
            "",
            LOCAL,
        )
        .await;
        assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{path}");
        let msg = r.body["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("--host-name evil.example"), "{msg}");
    }
    for host in [
        "localhost:4314",
        "hearth.local:4314",
        "192.168.1.20:4314",
        "[::1]:4314",
    ] {
        let r = call(&app, "GET", "/api/state", &[("host", host)], "", LOCAL).await;
        assert_eq!(r.status, StatusCode::OK, "{host}");
    }
    let allowed = app_with(
        Arc::new(Store::open_in_memory().expect("store")),
        Access::default()
            .with_host_name("family-pc.home")
            .expect("name"),
    );
    let r = call(
        &allowed,
        "GET",
        "/",
        &[("host", "family-pc.home:4314")],
        "",
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // The API alone (--no-household) is protected the same way.
    let api = hearth_server::router(AppState::new(
        serve_model(),
        None,
        options(Access::default()),
        Auth::new("127.0.0.1:4314".parse().expect("addr"), vec![]).expect("auth"),
    ));
    let r = call(
        &api,
        "GET",
        "/v1/models",
        &[("host", "evil.example:4314")],
        "",
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST);
    let r = call(&api, "GET", "/v1/models", &[HOST], "", LOCAL).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_foreign_page_cannot_lock_the_keeper_out() {
    let app = app();
    set_up(&app).await;
    let wrong = r#"{"name": "Ann", "secret": "wrong guess!"}"#;
    for _ in 0..25 {
        let r = call(
            &app,
            "POST",
            "/api/login",
            &[HOST, JSON, ("origin", "http://evil.example")],
            wrong,
            LOCAL,
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let right = r#"{"name": "Ann", "secret": "correct horse"}"#;
    let r = call(&app, "POST", "/api/login", &[HOST, JSON], right, LOCAL).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn v1_with_the_page_cookie_needs_the_csrf_token() {
    let app = app();
    let (cookie, csrf) = set_up(&app).await;
    let body = r#"{"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 1}"#;
    for (path, method, body) in [("/v1/models", "GET", ""), ("/v1/completions", "POST", body)] {
        let r = call(
            &app,
            method,
            path,
            &[HOST, JSON, ("cookie", &cookie)],
            body,
            LOCAL,
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{path} with a cookie alone"
        );
        let r = call(
            &app,
            method,
            path,
            &[HOST, JSON, ("cookie", &cookie), ("x-csrf-token", &csrf)],
            body,
            LOCAL,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn metrics_need_credentials_after_setup() {
    let app = app();
    let r = call(&app, "GET", "/metrics", &[HOST], "", LOCAL).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "open on loopback before setup, as /v1"
    );
    let (cookie, csrf) = set_up(&app).await;
    let r = call(&app, "GET", "/metrics", &[HOST], "", LOCAL).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &app,
        "GET",
        "/metrics",
        &[HOST, ("cookie", &cookie), ("x-csrf-token", &csrf)],
        "",
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// `n` logins at once; the statuses and error codes in the order sent.
async fn logins_at_once(app: &Router, bodies: Vec<(String, String)>) -> Vec<(StatusCode, String)> {
    let calls = bodies.into_iter().map(|(body, from)| {
        let app = app.clone();
        tokio::spawn(async move {
            let r = call(&app, "POST", "/api/login", &[HOST, JSON], &body, &from).await;
            let code = r.body["error"]["code"].as_str().unwrap_or("").to_string();
            (r.status, code)
        })
    });
    let mut out = Vec::new();
    for c in calls.collect::<Vec<_>>() {
        out.push(c.await.expect("login task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_logins_cannot_bypass_the_limit() {
    let app = app();
    set_up(&app).await;
    // 49 wrong passwords and the right one, sent together from one address each (so only the
    // per-person limit of 5 applies).
    let mut bodies: Vec<(String, String)> = (0..49)
        .map(|i| {
            (
                format!(r#"{{"name": "Ann", "secret": "wrong guess {i}"}}"#),
                format!("192.168.1.{}:4000", i + 2),
            )
        })
        .collect();
    bodies.push((
        r#"{"name": "Ann", "secret": "correct horse"}"#.into(),
        "192.168.1.100:4000".into(),
    ));
    let out = logins_at_once(&app, bodies).await;
    let checked = out
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        checked <= 5,
        "{checked} passwords were checked, the limit is 5: {out:?}"
    );
    assert!(out
        .iter()
        .all(|(s, c)| *s != StatusCode::TOO_MANY_REQUESTS || c == "rate_limited" || c == "busy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_logins_wait_in_a_bounded_queue() {
    let app = app();
    set_up(&app).await;
    // 50 different names from 50 addresses: no per-person or per-address limit is reached, so
    // only the queue in front of argon2 stands between them and 50 checks at once (19 MiB each).
    let bodies = (0..50)
        .map(|i| {
            (
                format!(r#"{{"name": "nobody {i}", "secret": "some password"}}"#),
                format!("10.0.{}.{}:4000", i / 200, i % 200 + 1),
            )
        })
        .collect();
    let out = logins_at_once(&app, bodies).await;
    let busy = out
        .iter()
        .filter(|(s, c)| *s == StatusCode::TOO_MANY_REQUESTS && c == "busy")
        .count();
    let checked = out
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(busy + checked, 50, "{out:?}");
    assert!(busy > 0, "50 logins at once all ran: {out:?}");
}

#[tokio::test]
async fn a_neighbour_cannot_use_up_the_setup_code_tries() {
    let app = app();
    let wrong =
        r#"{"household": "X", "name": "Eve", "password": "eve-password", "setup_code": "000001"}"#;
    // One LAN address uses up its own tries...
    for _ in 0..10 {
        let r = call(
            &app,
            "POST",
            "/api/setup",
            &[HOST, JSON],
            wrong,
            "192.168.1.66:1",
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = call(
        &app,
        "POST",
        "/api/setup",
        &[HOST, JSON],
        wrong,
        "192.168.1.66:2",
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // ...and many addresses use up the network's together...
    for i in 0..100 {
        let from = format!("192.168.2.{}:1", i % 250 + 1);
        call(&app, "POST", "/api/setup", &[HOST, JSON], wrong, &from).await;
    }
    let r = call(
        &app,
        "POST",
        "/api/setup",
        &[HOST, JSON],
        wrong,
        "192.168.3.1:1",
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    // ...but the keeper at the machine itself still sets up.
    let r = call(&app, "POST", "/api/setup", &[HOST, JSON], HOUSEHOLD, LOCAL).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn login_lockouts_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("household.db");
    let wrong = r#"{"name": "Ann", "secret": "wrong guess!"}"#;
    {
        let app = app_with(
            Arc::new(Store::open(&path).expect("store")),
            Access::default(),
        );
        set_up(&app).await;
        for _ in 0..5 {
            let r = call(&app, "POST", "/api/login", &[HOST, JSON], wrong, LOCAL).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    let app = app_with(
        Arc::new(Store::open(&path).expect("store")),
        Access::default(),
    );
    let right = r#"{"name": "Ann", "secret": "correct horse"}"#;
    let r = call(&app, "POST", "/api/login", &[HOST, JSON], right, LOCAL).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
}

#[tokio::test]
async fn listed_origins_get_cors_and_others_do_not() {
    let app = app_with(
        Arc::new(Store::open_in_memory().expect("store")),
        Access::default()
            .with_cors_origin("http://192.168.1.20:3000")
            .expect("origin"),
    );
    let r = call(
        &app,
        "OPTIONS",
        "/v1/chat/completions",
        &[
            HOST,
            ("origin", "http://192.168.1.20:3000"),
            ("access-control-request-method", "POST"),
        ],
        "",
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://192.168.1.20:3000"
    );
    assert!(!r
        .headers
        .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    let r = call(
        &app,
        "GET",
        "/v1/models",
        &[HOST, ("origin", "http://192.168.1.21:3000")],
        "",
        LOCAL,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}
