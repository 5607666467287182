//! hearth-server: the OpenAI-compatible HTTP API over one engine loop.
//!
//! ```text
//!  HTTP handlers (axum, async)            engine thread (scheduler.rs)
//!  parse + validate ─ render prompt ─►  Job ─► queue ─► admit ─► Engine::step ─┐
//!  stream SSE / JSON ◄─ text, stops ◄──  Update (token, logprob, finish) ◄─────┘
//! ```
//!
//! Handlers own everything about text (templates, stop strings, tool-call parsing, OpenAI's
//! shapes); the engine loop owns tokens, batching and the KV cache. A handler cancels its
//! sequence by dropping its update channel, which is exactly what happens when a client
//! disconnects and axum drops the response.
//!
//! Every caller of the engine goes through one generation core, `generation/`: the request's
//! `Plan`, starting it on the engine loop, sampler and length fields checked one way,
//! detokenizing and stop strings, SSE, and the work kept off the async workers. Each API family
//! has a folder of its own over it (`openai/`: chat, completions, embeddings and models, with
//! OpenAI's wire types and the tool-call plan beside them, and the Responses API in
//! `openai/responses/`; `ollama/`: Ollama's API, and `anthropic/`: Anthropic's Messages API,
//! both mapped onto the OpenAI chat path), and so does the household page (`household/`); the
//! core imports none of them. Every route and the middleware around them are listed in one
//! place, `routes.rs`. Request bodies are read by `body.rs`, errors take their
//! shape in `error.rs`.
//!
//! This crate does not resolve or download models (the binary does, through hearth-fetch) and
//! does not parse command lines.

pub mod access;
mod anthropic;
pub mod auth;
mod body;
pub mod error;
mod generation;
pub mod household;
pub mod listen;
pub mod metrics;
pub mod ollama;
pub mod openai;
mod routes;
pub mod scheduler;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use hearth_engine::{Engine, EngineOptions};
use hearth_model::chat::ChatTemplate;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};

pub use access::Access;
pub use auth::Auth;
pub use metrics::Metrics;
pub use scheduler::Scheduler;

/// Default TCP port (documented in the README): "HE" on a phone keypad, 43 → 4300 + 14.
/// The catalog name of the embedding model.
pub const EMBED_MODEL: &str = "all-minilm-l6-v2";

pub const DEFAULT_PORT: u16 = 4314;

/// A chat/completion model ready to serve.
pub struct ServeModel {
    /// The id clients put in `model`.
    pub id: String,
    pub model: Model,
    pub tokenizer: Tokenizer,
    /// `None` for base models: `/v1/chat/completions` then refuses, `/v1/completions` works.
    pub template: Option<ChatTemplate>,
    /// Sampling settings when a request leaves a field out (the catalog's recommendation).
    pub defaults: SamplerConfig,
    /// A smaller model with the same vocabulary that drafts for this one (speculative
    /// decoding; the replies are the same without it).
    pub draft: Option<Model>,
}

/// The sentence-embedding model for `/v1/embeddings`, with the id clients use for it.
pub struct EmbedModel {
    pub id: String,
    pub embedder: hearth_embed::Embedder,
}

/// How the server is sized.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub engine: EngineOptions,
    /// Requests that may wait for the engine before new ones get 503.
    pub max_queue: usize,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// The host names and browser origins answered to.
    pub access: Access,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            engine: EngineOptions {
                ctx: 4096,
                max_seqs: 8,
                ..EngineOptions::default()
            },
            max_queue: 64,
            body_limit: 8 << 20,
            access: Access::default(),
        }
    }
}

/// The chat model being served, with its engine loop. The owner can switch models while the
/// server runs: handlers take one [`Served`] at the start of a request and use it to the end, so
/// a request never mixes two models' tokenizers, and replies already running finish on the
/// model that began them (its engine loop ends once the last of them is done).
pub(crate) struct Served {
    pub(crate) model_id: String,
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) template: Option<ChatTemplate>,
    pub(crate) defaults: SamplerConfig,
    pub(crate) n_vocab: usize,
    pub(crate) ctx: usize,
    pub(crate) scheduler: Scheduler,
    /// What the model's file says about it, for the APIs that describe models (Ollama's).
    pub(crate) facts: ModelFacts,
    /// Built on first use: the vocabulary trie takes a moment for large vocabularies, and
    /// most requests never need it.
    grammar: std::sync::OnceLock<Arc<hearth_grammar::GrammarEnv>>,
}

impl Served {
    fn start(
        m: ServeModel,
        engine: EngineOptions,
        metrics: Arc<Metrics>,
        max_queue: usize,
    ) -> Served {
        let n_vocab = m.model.config().n_vocab;
        let facts = ModelFacts::of(&m.model);
        let mut engine = Engine::new(m.model, engine);
        if let Some(draft) = m.draft {
            // The command line checked the vocabularies before loading; if they differ after
            // all, serving goes on without the draft.
            if let Err(e) = engine.set_draft(draft) {
                tracing::warn!("serving {} without its draft model: {e}", m.id);
            }
        }
        let ctx = engine.ctx();
        let scheduler = Scheduler::start(engine, metrics, max_queue);
        Served {
            model_id: m.id,
            tokenizer: Arc::new(m.tokenizer),
            template: m.template,
            defaults: m.defaults,
            n_vocab,
            ctx,
            scheduler,
            facts,
            grammar: std::sync::OnceLock::new(),
        }
    }

    /// The grammar environment for this model's vocabulary.
    pub(crate) fn grammar(&self) -> Result<Arc<hearth_grammar::GrammarEnv>, error::ApiError> {
        if let Some(g) = self.grammar.get() {
            return Ok(g.clone());
        }
        let env = hearth_grammar::GrammarEnv::new(&self.tokenizer).map_err(|e| {
            error::ApiError::internal(format!("cannot build the grammar engine: {e}"))
        })?;
        Ok(self.grammar.get_or_init(|| Arc::new(env)).clone())
    }
}

/// Facts about a served model, read once from its file (the engine owns the model after that).
#[derive(Clone, Debug)]
pub(crate) struct ModelFacts {
    pub(crate) arch: String,
    pub(crate) parameters: u64,
    /// The storage type holding most of the weights' bytes (`Q8_0`, `Q4_K`...).
    pub(crate) quantization: String,
    pub(crate) file_size: u64,
    pub(crate) n_embd: usize,
    pub(crate) n_layer: usize,
    pub(crate) n_head: usize,
    pub(crate) n_kv_head: usize,
}

impl ModelFacts {
    fn of(model: &Model) -> ModelFacts {
        let c = model.config();
        let gguf = model.gguf();
        let mut bytes_by_type: Vec<(&'static str, u64)> = Vec::new();
        for t in gguf.tensors() {
            let name = t.ty.name();
            match bytes_by_type.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += t.n_bytes,
                None => bytes_by_type.push((name, t.n_bytes)),
            }
        }
        ModelFacts {
            arch: c.arch.clone(),
            parameters: gguf.tensors().iter().map(|t| t.n_elements()).sum(),
            quantization: bytes_by_type
                .iter()
                .max_by_key(|e| e.1)
                .map_or_else(String::new, |e| e.0.to_string()),
            file_size: gguf.file_size(),
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_kv_head: c.n_kv_head,
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    served: RwLock<Arc<Served>>,
    /// Set while a model switch loads the new model; a second switch meanwhile is refused.
    pub(crate) switching: AtomicBool,
    pub(crate) max_queue: usize,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) auth: Auth,
    pub(crate) body_limit: usize,
    pub(crate) access: Access,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) started: std::time::SystemTime,
    /// `None`: not installed; `/v1/embeddings` answers 404 saying how to pull it.
    pub(crate) embed: Option<Arc<EmbedModel>>,
    /// Its own threads: embedding requests run beside generation rather than between steps.
    pub(crate) embed_pool: Arc<hearth_kernels::ThreadPool>,
    /// Accounts, conversations and the page; `None` serves the API alone.
    pub(crate) household: Option<household::Household>,
    /// Stored Responses when there is no household to keep them (bounded, in memory).
    pub(crate) responses: openai::responses::MemoryResponses,
}

impl AppState {
    /// Starts the engine loop for `m` and returns the shared state.
    pub fn new(
        m: ServeModel,
        embed: Option<EmbedModel>,
        opts: ServeOptions,
        auth: Auth,
    ) -> Arc<AppState> {
        AppState::with_household(m, embed, opts, auth, None)
    }

    /// [`new`](Self::new) with the household page and its storage.
    pub fn with_household(
        m: ServeModel,
        embed: Option<EmbedModel>,
        opts: ServeOptions,
        auth: Auth,
        household: Option<household::HouseholdOptions>,
    ) -> Arc<AppState> {
        let embed_threads = opts.engine.threads.max(1);
        let metrics = Arc::new(Metrics::new());
        let served = Served::start(m, opts.engine, metrics.clone(), opts.max_queue);
        Arc::new(AppState {
            served: RwLock::new(Arc::new(served)),
            switching: AtomicBool::new(false),
            max_queue: opts.max_queue,
            metrics,
            auth,
            body_limit: opts.body_limit,
            access: opts.access,
            shutting_down: AtomicBool::new(false),
            started: std::time::SystemTime::now(),
            embed: embed.map(Arc::new),
            embed_pool: Arc::new(hearth_kernels::ThreadPool::new(embed_threads)),
            household: household.map(household::Household::new),
            responses: Default::default(),
        })
    }

    /// The chat model in service now.
    pub(crate) fn served(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves `m` from now on. New requests go to it at once; the ones already running finish
    /// on the old model, whose engine loop then ends and releases it.
    pub fn switch_model(&self, m: ServeModel, engine: EngineOptions) {
        let new = Arc::new(Served::start(
            m,
            engine,
            self.metrics.clone(),
            self.max_queue,
        ));
        let old = std::mem::replace(
            &mut *self.served.write().unwrap_or_else(|p| p.into_inner()),
            new,
        );
        // The old loop keeps running for its replies but no longer speaks for the gauges.
        old.scheduler.retire();
        tracing::info!("now serving {} (was {})", self.model_id(), old.model_id);
    }

    /// The id clients use for the chat model in service.
    pub fn model_id(&self) -> String {
        self.served().model_id.clone()
    }

    /// The household's name, once it is set up.
    pub fn household_name(&self) -> Option<String> {
        self.household
            .as_ref()
            .and_then(|h| h.store.household().ok().flatten())
    }

    /// Every model id this server answers to, `served`'s first.
    pub(crate) fn model_ids(&self, served: &Served) -> Vec<String> {
        let mut v = vec![served.model_id.clone()];
        v.extend(self.embed.as_ref().map(|e| e.id.clone()));
        v
    }

    /// The context window in force.
    pub fn ctx(&self) -> usize {
        self.served().ctx
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// New requests get 503 from now on; running ones continue.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests queued or running.
    pub fn in_flight(&self) -> usize {
        self.metrics.in_flight()
    }
}

/// The full router: `/v1/*`, `/health`, `/metrics`, and with a household the page and `/api/*`.
pub fn router(state: Arc<AppState>) -> axum::Router {
    routes::router(state)
}

/// Where the server listens, as a URL for humans.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
