//! What the household tests that follow a running reply share: a server on the real SmolLM2
//! model whose replies run to their full length, a browser, and a reader for a reply's event
//! stream that takes one event at a time while the reply is still being written.

#![allow(dead_code)]

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
use hearth_store::{Secret, Store, User};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Longest a test waits for something the server is sure to do; only a broken server (or a
/// hung one) ever reaches it, so it is generous for a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(180);

/// The household server over `store`, with a `ctx`-token context. The model may never end a
/// reply on its own (its end-of-turn tokens are banned), so every reply runs to its full length
/// unless someone stops it: a test can count on it still running while it probes.
pub fn app(store: Arc<Store>, ctx: usize) -> Router {
    app_with(
        store,
        Opts {
            ctx,
            ..Opts::default()
        },
    )
}

/// How [`app_with`] sets up its server.
pub struct Opts {
    pub ctx: usize,
    /// Whether the model may end a reply on its own (else every reply runs to the cap).
    pub ends: bool,
    /// The longest reply, in tokens.
    pub reply_tokens: usize,
    /// Whether the embedding model (all-MiniLM) is loaded, for the children's topic check.
    pub embeddings: bool,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            ctx: 512,
            ends: false,
            reply_tokens: 1024,
            embeddings: false,
        }
    }
}

/// [`app`] with other options.
pub fn app_with(store: Arc<Store>, o: Opts) -> Router {
    let ctx = o.ctx;
    let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 for tests");
    let model = Model::open(&path).expect("model");
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).expect("tokenizer");
    let template = ChatTemplate::from_gguf(md, &tokenizer).expect("template");
    let never_ends = if o.ends {
        Vec::new()
    } else {
        tokenizer
            .eog_ids()
            .iter()
            .map(|&id| (id, f32::NEG_INFINITY))
            .collect()
    };
    let embed = o.embeddings.then(|| {
        let dir = hearth_fetch::test_model("all-minilm-l6-v2").expect("embedding model");
        hearth_server::EmbedModel {
            id: "all-minilm-l6-v2".into(),
            embedder: hearth_embed::Embedder::open(&dir).expect("embedder"),
        }
    });
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let state = AppState::with_household(
        ServeModel {
            id: "smollm2-135m".into(),
            model,
            tokenizer,
            template,
            defaults: SamplerConfig {
                logit_bias: never_ends,
                ..SamplerConfig::greedy()
            },
            draft: None,
        },
        embed,
        ServeOptions {
            engine: EngineOptions {
                ctx,
                // One thread: a loaded machine (CI has two cores) slows it least.
                threads: 1,
                max_seqs: 2,
                ..EngineOptions::default()
            },
            ..ServeOptions::default()
        },
        Auth::household(listen, vec![]),
        Some(HouseholdOptions {
            store,
            setup_code: None,
            admin: None,
            reply_tokens: o.reply_tokens,
        }),
    );
    hearth_server::router(state)
}

/// A household in `store`: Ann the owner (password "correct horse") and the members Bob
/// (PIN 4321) and Cat (PIN 8765).
pub fn household(store: &Store) -> (User, User, User) {
    let ann = store
        .setup("The Smiths", "Ann", "correct horse")
        .expect("setup");
    let bob = store
        .add_person("Bob", &Secret::Pin("4321".into()))
        .expect("Bob");
    let cat = store
        .add_person("Cat", &Secret::Pin("8765".into()))
        .expect("Cat");
    (ann, bob, cat)
}

/// A browser: its cookie and CSRF token.
#[derive(Clone, Default)]
pub struct Browser {
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

pub struct Resp {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("JSON, got {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Browser {
    /// A browser logged in as `name`.
    pub async fn login(app: &Router, name: &str, secret: &str) -> Browser {
        let mut b = Browser::default();
        let r = b
            .send(
                app,
                "POST",
                "/api/login",
                Some(json!({"name": name, "secret": secret})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login of {name}: {}", r.text());
        b
    }

    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Request<Body> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost");
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request")
    }

    pub async fn send(
        &mut self,
        app: &Router,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let req = self.request(method, path, body);
        let resp = app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        if let Some(set) = resp.headers().get(header::SET_COOKIE) {
            let set = set.to_str().expect("ascii cookie");
            self.cookie = Some(set.split(';').next().expect("pair").to_string());
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let r = Resp { status, body };
        if status.is_success() {
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                if let Some(c) = v.get("csrf").and_then(Value::as_str) {
                    self.csrf = Some(c.to_string());
                }
            }
        }
        r
    }

    /// Starts a conversation and asks something that gets a long reply; returns the
    /// conversation's id once the reply has started writing, and its event stream.
    pub async fn running_reply(&mut self, app: &Router) -> (i64, Events) {
        let c = self
            .send(app, "POST", "/api/conversations", Some(json!({})))
            .await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.text());
        let id = c.json()["id"].as_i64().expect("id");
        let r = self
            .send(
                app,
                "POST",
                &format!("/api/conversations/{id}/messages"),
                Some(json!({"content": "Tell me a long story about a dragon who loves to bake."})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let mut events = self.events(app, id).await;
        events.until_writing().await;
        (id, events)
    }

    /// Follows conversation `id`'s reply.
    pub async fn events(&self, app: &Router, id: i64) -> Events {
        let req = self.request("GET", &format!("/api/conversations/{id}/events"), None);
        let resp = app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        Events {
            body: resp.into_body(),
            buf: String::new(),
            text: String::new(),
            deltas: 0,
        }
    }
}

/// A reply's event stream, read one event at a time, and the reply's text as the page sees it.
pub struct Events {
    body: Body,
    buf: String,
    /// The snapshot and every delta since.
    pub text: String,
    /// Deltas received.
    pub deltas: usize,
}

impl Events {
    /// The next event's name and data; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = Some(n.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                // A keep-alive comment has neither.
                let Some(name) = name else { continue };
                let data: Value = serde_json::from_str(&data).expect("JSON data");
                match name.as_str() {
                    "snapshot" => self.text = data["content"].as_str().expect("text").into(),
                    "delta" => {
                        self.text.push_str(data["text"].as_str().expect("text"));
                        self.deltas += 1;
                    }
                    _ => {}
                }
                return Some((name, data));
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("the event stream went silent")?
                .expect("a frame");
            if let Ok(bytes) = frame.into_data() {
                self.buf
                    .push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
            }
        }
    }

    /// Reads until the reply has written some text.
    pub async fn until_writing(&mut self) {
        while self.text.is_empty() {
            match self.next().await {
                Some((name, _)) if name == "snapshot" || name == "delta" || name == "queued" => {}
                other => panic!("expected the reply to be writing, got {other:?}"),
            }
        }
    }

    /// Reads until the reply ends; returns the status it ended with.
    pub async fn until_done(&mut self) -> String {
        loop {
            match self.next().await {
                Some((name, data)) if name == "done" => {
                    return data["status"].as_str().expect("status").into()
                }
                Some(_) => {}
                None => panic!("the event stream ended without `done`"),
            }
        }
    }
}
