//! The household page's routes and who may use them, through `Router::oneshot` on the real
//! SmolLM2 model with an in-memory store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::EngineOptions;
use hearth_model::chat::ChatTemplate;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::household::HouseholdOptions;
use hearth_server::{AppState, Auth, ServeModel, ServeOptions};
use hearth_store::Store;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn app(listen: &str, setup_code: Option<&str>) -> Router {
    let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 for tests");
    let model = Model::open(&path).expect("model");
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).expect("tokenizer");
    let template = ChatTemplate::from_gguf(md, &tokenizer).expect("template");
    let listen: SocketAddr = listen.parse().expect("addr");
    let state = AppState::with_household(
        ServeModel {
            id: "smollm2-135m".into(),
            model,
            tokenizer,
            template,
            defaults: SamplerConfig::greedy(),
            draft: None,
        },
        None,
        ServeOptions {
            engine: EngineOptions {
                ctx: 512,
                threads: 2,
                max_seqs: 2,
                ..EngineOptions::default()
            },
            ..ServeOptions::default()
        },
        Auth::household(listen, vec![]),
        Some(HouseholdOptions {
            store: Arc::new(Store::open_in_memory().expect("store")),
            setup_code: setup_code.map(str::to_string),
            admin: None,
            reply_tokens: hearth_server::household::DEFAULT_REPLY_TOKENS,
        }),
    );
    hearth_server::router(state)
}

/// A browser: its cookie and CSRF token.
#[derive(Clone, Default)]
struct Browser {
    cookie: Option<String>,
    csrf: Option<String>,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("JSON, got {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Browser {
    async fn send(&mut self, app: &Router, method: &str, path: &str, body: Option<Value>) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        if let Some(set) = headers.get(header::SET_COOKIE) {
            let set = set.to_str().expect("ascii cookie");
            let pair = set.split(';').next().expect("pair").to_string();
            self.cookie = Some(pair);
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let r = Resp {
            status,
            headers,
            body,
        };
        if status.is_success() {
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                if let Some(c) = v.get("csrf").and_then(Value::as_str) {
                    self.csrf = Some(c.to_string());
                }
            }
        }
        r
    }
}

async fn setup(app: &Router) -> Browser {
    let mut owner = Browser::default();
    let r = owner
        .send(
            app,
            "POST",
            "/api/setup",
            Some(json!({"household": "The Smiths", "name": "Ann", "password": "correct horse"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP must not set Secure: {cookie}"
    );
    owner
}

async fn person(app: &Router, owner: &mut Browser, name: &str, pin: &str) -> Browser {
    let r = owner
        .send(
            app,
            "POST",
            "/api/people",
            Some(json!({"name": name, "pin": pin})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let mut b = Browser::default();
    let r = b
        .send(
            app,
            "POST",
            "/api/login",
            Some(json!({"name": name, "secret": pin})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    b
}

#[tokio::test]
async fn nothing_private_works_without_a_session() {
    let app = app("127.0.0.1:0", None);
    let mut anon = Browser::default();
    for (m, p) in [
        ("GET", "/"),
        ("GET", "/app.js"),
        ("GET", "/app.css"),
        ("GET", "/api/state"),
        ("GET", "/health"),
    ] {
        assert_eq!(
            anon.send(&app, m, p, None).await.status,
            StatusCode::OK,
            "{p}"
        );
    }
    let page = anon.send(&app, "GET", "/", None).await;
    assert!(page.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    let mut owner = setup(&app).await;
    let _ = owner
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await;
    for (m, p) in [
        ("GET", "/api/conversations"),
        ("GET", "/api/conversations/1"),
        ("POST", "/api/conversations"),
        ("GET", "/api/people"),
        ("GET", "/api/keys"),
        ("GET", "/api/settings"),
        ("GET", "/api/export"),
        ("POST", "/api/me/password"),
        ("GET", "/v1/models"),
    ] {
        let r = anon.send(&app, m, p, Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {p}");
    }
    // A second setup is refused.
    let r = anon
        .send(
            &app,
            "POST",
            "/api/setup",
            Some(json!({"household": "x", "name": "Eve", "password": "password1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

/// The page's files come with their exact types, `nosniff` and `no-cache`, without a session;
/// a module that does not exist is a 404, not the page.
#[tokio::test]
async fn the_page_and_its_modules_are_served_with_their_types() {
    let app = app("127.0.0.1:0", None);
    let mut anon = Browser::default();
    for (p, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        ("/page/api.js", "text/javascript; charset=utf-8"),
        ("/page/chat.js", "text/javascript; charset=utf-8"),
        ("/page/markdown.js", "text/javascript; charset=utf-8"),
    ] {
        let r = anon.send(&app, "GET", p, None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert_eq!(r.headers[header::CONTENT_TYPE], kind, "{p}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{p}");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-cache", "{p}");
    }
    let csp = anon.send(&app, "GET", "/", None).await.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    for p in ["/page/nope.js", "/page/..%2fapp.js", "/page/"] {
        let r = anon.send(&app, "GET", p, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
}

/// A phone can put Hearth on its home screen (manifest and icons with their types), and every
/// address the page puts in the bar (a chat, a Settings tab) opens the page on a reload.
#[tokio::test]
async fn the_page_has_a_manifest_icons_and_an_address_per_screen() {
    let app = app("127.0.0.1:0", None);
    let mut anon = Browser::default();
    let r = anon.send(&app, "GET", "/manifest.webmanifest", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/manifest+json");
    let m = r.json();
    assert_eq!(m["start_url"], "/");
    assert_eq!(m["display"], "standalone");
    let icons = m["icons"].as_array().expect("icons");
    assert!(icons.iter().any(|i| i["sizes"] == "192x192"));
    assert!(icons.iter().any(|i| i["sizes"] == "512x512"));
    for i in icons {
        let src = i["src"].as_str().expect("src");
        let r = anon.send(&app, "GET", src, None).await;
        assert_eq!(r.status, StatusCode::OK, "{src}");
        assert_eq!(
            r.headers[header::CONTENT_TYPE],
            i["type"].as_str().unwrap(),
            "{src}"
        );
        if src.ends_with(".png") {
            assert!(r.body.starts_with(b"\x89PNG\r\n"), "{src}");
        }
    }
    let page = anon.send(&app, "GET", "/", None).await.body;
    for p in ["/c/12", "/settings", "/settings/people"] {
        let r = anon.send(&app, "GET", p, None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert_eq!(r.body, page, "{p}");
        assert!(
            r.headers.contains_key(header::CONTENT_SECURITY_POLICY),
            "{p}"
        );
    }
    assert_eq!(
        anon.send(&app, "GET", "/icons/nope.png", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn people_see_only_their_own_conversations() {
    let app = app("127.0.0.1:0", None);
    let mut owner = setup(&app).await;
    let mut bob = person(&app, &mut owner, "Bob", "4321").await;
    let c = owner
        .send(
            &app,
            "POST",
            "/api/conversations",
            Some(json!({"title": "Ann's secrets"})),
        )
        .await
        .json();
    let id = c["id"].as_i64().unwrap();
    let list = bob
        .send(&app, "GET", "/api/conversations", None)
        .await
        .json();
    assert_eq!(list, json!([]));
    for (m, p, b) in [
        ("GET", format!("/api/conversations/{id}"), None),
        (
            "PATCH",
            format!("/api/conversations/{id}"),
            Some(json!({"title": "mine"})),
        ),
        (
            "POST",
            format!("/api/conversations/{id}/messages"),
            Some(json!({"content": "hi"})),
        ),
        ("DELETE", format!("/api/conversations/{id}"), None),
        ("GET", format!("/api/conversations/{id}/events"), None),
    ] {
        let r = bob.send(&app, m, &p, b).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}");
    }
    // Members cannot manage people or keys.
    assert_eq!(
        bob.send(&app, "GET", "/api/people", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.send(&app, "POST", "/api/keys", Some(json!({"name": "x"})))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Ann's conversation is still there.
    let r = owner
        .send(&app, "GET", &format!("/api/conversations/{id}"), None)
        .await;
    assert_eq!(r.json()["title"], "Ann's secrets");
}

/// `hearth.lock`'s pending changes and accepting them are the keeper's: a member, or a page
/// without a session, neither sees nor accepts them.
#[tokio::test]
async fn lock_changes_are_for_the_keeper_only() {
    let app = app("127.0.0.1:0", None);
    let mut owner = setup(&app).await;
    let mut bob = person(&app, &mut owner, "Bob", "4321").await;
    let accept = || Some(json!({"model": "smollm2-135m"}));
    assert_eq!(
        bob.send(&app, "GET", "/api/lock", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.send(&app, "POST", "/api/lock/accept", accept())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let mut anon = Browser::default();
    assert_eq!(
        anon.send(&app, "GET", "/api/lock", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = owner.send(&app, "GET", "/api/lock", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["pending"], json!([]));
    // This server was built without the binary's model management: it says so.
    let r = owner.send(&app, "POST", "/api/lock/accept", accept()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn csrf_is_required_for_changes() {
    let app = app("127.0.0.1:0", None);
    let owner = setup(&app).await;
    let mut no_token = Browser {
        cookie: owner.cookie.clone(),
        csrf: None,
    };
    let r = no_token
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut wrong = Browser {
        cookie: owner.cookie.clone(),
        csrf: Some("0".repeat(64)),
    };
    let r = wrong
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Reading needs no token.
    assert_eq!(
        no_token
            .send(&app, "GET", "/api/conversations", None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn setup_beyond_loopback_needs_the_printed_code() {
    let app = app("0.0.0.0:0", Some("482913"));
    let mut b = Browser::default();
    let st = b.send(&app, "GET", "/api/state", None).await.json();
    assert_eq!(st["setup_code_required"], true);
    let body = |code: Option<&str>| {
        let mut v = json!({"household": "Smiths", "name": "Ann", "password": "correct horse"});
        if let Some(c) = code {
            v["setup_code"] = json!(c);
        }
        v
    };
    assert_eq!(
        b.send(&app, "POST", "/api/setup", Some(body(None)))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        b.send(&app, "POST", "/api/setup", Some(body(Some("000000"))))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Before setup, /v1 on a network listener is closed.
    assert_eq!(
        b.send(&app, "GET", "/v1/models", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.send(&app, "POST", "/api/setup", Some(body(Some("482913"))))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn guessing_the_setup_code_is_limited() {
    let app = app("0.0.0.0:0", Some("482913"));
    let mut b = Browser::default();
    let body = |code: &str| json!({"household": "Smiths", "name": "Ann", "password": "correct horse", "setup_code": code});
    for _ in 0..10 {
        let r = b
            .send(&app, "POST", "/api/setup", Some(body("111111")))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // After ten wrong codes even the right one waits.
    let r = b
        .send(&app, "POST", "/api/setup", Some(body("482913")))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn api_keys_and_sessions_open_v1_and_revoked_keys_fail() {
    let app = app("127.0.0.1:0", None);
    let mut anon = Browser::default();
    // Loopback, no owner yet: open, as in the serve issue.
    assert_eq!(
        anon.send(&app, "GET", "/v1/models", None).await.status,
        StatusCode::OK
    );
    let mut owner = setup(&app).await;
    assert_eq!(
        anon.send(&app, "GET", "/v1/models", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        owner.send(&app, "GET", "/v1/models", None).await.status,
        StatusCode::OK
    );
    let k = owner
        .send(
            &app,
            "POST",
            "/api/keys",
            Some(json!({"name": "notes app"})),
        )
        .await
        .json();
    let key = k["key"].as_str().expect("key shown once").to_string();
    let listed = owner.send(&app, "GET", "/api/keys", None).await;
    assert!(
        !String::from_utf8_lossy(&listed.body).contains(&key),
        "keys are never listed"
    );
    let with_key = |key: &str| {
        Request::get("/v1/models")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    let r = app.clone().oneshot(with_key(&key)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = k["id"].as_i64().unwrap();
    let r = owner
        .send(&app, "DELETE", &format!("/api/keys/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.clone().oneshot(with_key(&key)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Logging out ends the session.
    owner.send(&app, "POST", "/api/logout", None).await;
    let mut old = owner.clone();
    assert_eq!(
        old.send(&app, "GET", "/api/conversations", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// A wrong login says, in its code, when the next wrong try is the last before the lockout and
/// when this one started it, so the page can warn in time.
#[tokio::test]
async fn wrong_logins_warn_before_the_last_try() {
    let app = app("127.0.0.1:0", None);
    let _owner = setup(&app).await;
    let mut b = Browser::default();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let r = b
            .send(
                &app,
                "POST",
                "/api/login",
                Some(json!({"name": "Ann", "secret": "guess1234"})),
            )
            .await;
        codes.push(if r.status == StatusCode::TOO_MANY_REQUESTS {
            "429".to_string()
        } else {
            r.json()["error"]["code"].as_str().unwrap_or("").to_string()
        });
    }
    assert_eq!(
        codes,
        [
            "wrong_login",
            "wrong_login",
            "wrong_login",
            "last_try",
            "locked_now",
            "429"
        ]
    );
}

#[tokio::test]
async fn wrong_logins_are_rate_limited() {
    let app = app("127.0.0.1:0", None);
    let _owner = setup(&app).await;
    let mut b = Browser::default();
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = b
            .send(
                &app,
                "POST",
                "/api/login",
                Some(json!({"name": "Ann", "secret": "guess1234"})),
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let r = b
        .send(
            &app,
            "POST",
            "/api/login",
            Some(json!({"name": "ann", "secret": "correct horse"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password waits too"
    );
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

/// The list says which chats have a reply being written (a page opened meanwhile shows it),
/// and a first reply that was stopped still names the chat after the question.
#[tokio::test]
async fn a_stopped_first_reply_titles_the_chat_and_the_list_shows_it_running() {
    let app = app("127.0.0.1:0", None);
    let mut owner = setup(&app).await;
    let id = owner
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let r = owner
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/messages"),
            Some(json!({"content": "Write a long story about a dragon who bakes."})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = owner
        .send(&app, "GET", "/api/conversations", None)
        .await
        .json();
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["running"], true, "{list}");
    let r = owner
        .send(&app, "POST", &format!("/api/conversations/{id}/stop"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut conv = Value::Null;
    for _ in 0..100 {
        conv = owner
            .send(&app, "GET", &format!("/api/conversations/{id}"), None)
            .await
            .json();
        if conv["running"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(conv["messages"][1]["status"], "stopped");
    assert_eq!(
        conv["title"],
        "Write a long story about a dragon who bakes."
    );
    let list = owner
        .send(&app, "GET", "/api/conversations", None)
        .await
        .json();
    assert_eq!(list[0]["running"], false, "{list}");
    assert_eq!(list[0]["title"], conv["title"]);
}

#[tokio::test]
async fn a_reply_streams_is_saved_and_titles_the_chat() {
    let app = app("127.0.0.1:0", None);
    let mut owner = setup(&app).await;
    let c = owner
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await
        .json();
    let id = c["id"].as_i64().unwrap();
    let r = owner
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/messages"),
            Some(json!({"content": "Say hello to the family."})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["assistant"]["status"], "streaming");
    // The event stream ends with `done` (or is `idle` if the reply already finished).
    let ev = owner
        .send(
            &app,
            "GET",
            &format!("/api/conversations/{id}/events"),
            None,
        )
        .await;
    let text = String::from_utf8_lossy(&ev.body).to_string();
    assert!(
        text.contains("event: done") || text.contains("event: idle"),
        "{text}"
    );
    let mut conv = Value::Null;
    for _ in 0..100 {
        conv = owner
            .send(&app, "GET", &format!("/api/conversations/{id}"), None)
            .await
            .json();
        if conv["running"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let msgs = conv["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["status"], "complete");
    assert!(!msgs[1]["content"].as_str().unwrap().is_empty());
    assert_eq!(conv["title"], "Say hello to the family.");
    // Export has it.
    let ex = owner
        .send(&app, "GET", "/api/export?format=markdown", None)
        .await;
    assert!(String::from_utf8_lossy(&ex.body).contains("Say hello to the family."));
}

#[tokio::test]
async fn a_page_that_starts_listening_late_still_hears_it_is_queued() {
    // Two sequences at a time: the third reply waits. Its page may subscribe after the engine
    // said so; the event stream must still tell it where it stands.
    let app = app("127.0.0.1:0", None);
    let mut owner = setup(&app).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let c = owner
            .send(&app, "POST", "/api/conversations", Some(json!({})))
            .await
            .json();
        let id = c["id"].as_i64().unwrap();
        let r = owner
            .send(
                &app,
                "POST",
                &format!("/api/conversations/{id}/messages"),
                Some(json!({"content": format!("Write a long story about dragon number {i}.")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        ids.push(id);
    }
    // Long enough for the engine loop to have queued the third reply and said so.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = owner
        .send(
            &app,
            "GET",
            &format!("/api/conversations/{}/events", ids[2]),
            None,
        )
        .await;
    let text = String::from_utf8_lossy(&ev.body).to_string();
    let snapshot = text.find("event: snapshot").expect("a snapshot first");
    let queued = text.find("event: queued").expect("then where it stands");
    assert!(snapshot < queued, "{text}");
    assert!(
        text[queued..].starts_with("event: queued\ndata: {\"ahead\":1}"),
        "{text}"
    );
}
