//! `hearth serve`: the OpenAI-compatible API for the household.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use hearth_engine::{EngineOptions, Speculation};
use hearth_fetch::{Catalog, Home};
use hearth_server::household::HouseholdOptions;
use hearth_server::{AppState, Auth, EmbedModel, ServeModel, ServeOptions};

use crate::load::{self, GenOptions};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Model to serve: catalog name, installed name or .gguf path (default: the default model,
    /// pulled if missing).
    #[arg(short, long)]
    pub model: Option<String>,
    /// Address and port to listen on. Loopback by default; use 0.0.0.0:4314 for phones and laptops at home
    /// (the API then needs a key or a logged-in session; first-run setup needs the printed code).
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], hearth_server::DEFAULT_PORT)))]
    pub listen: SocketAddr,
    /// An API key clients must send as `Authorization: Bearer KEY` (repeatable).
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "HEARTH_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Context window per conversation, in tokens (capped at the model's trained context).
    /// Default: the context `hearth.lock` pins for the model (4096 when it is first locked).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Conversations generated at once; more wait in the queue.
    #[arg(long, default_value_t = 8)]
    pub max_seqs: usize,
    /// Requests that may wait for a free slot before new ones are refused with 503.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Threads for the model (default: physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Most prompt tokens one conversation adds to a step, so long prompts do not stall others.
    #[arg(long, default_value_t = 256)]
    pub prefill_chunk: usize,
    /// Do not announce `hearth.local` on the network (mDNS); only used beyond loopback.
    #[arg(long)]
    pub no_mdns: bool,
    /// Serve the API alone, without the household page and its accounts.
    #[arg(long)]
    pub no_household: bool,
    /// Do not load the embedding model (all-minilm-l6-v2) for /v1/embeddings.
    #[arg(long)]
    pub no_embeddings: bool,
    /// Do not reuse the KV cache of identical prompt prefixes (for measuring what it buys).
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// Decode one token per step instead of verifying tokens drafted from the conversation
    /// itself (prompt lookup; exact, the same output either way).
    #[arg(long)]
    pub no_speculation: bool,
    /// A small model with the same tokenizer (catalog name or .gguf path) that drafts tokens
    /// for the served model to verify several at a time. Greedy replies are identical to those
    /// without it; sampled replies follow the same distribution (not the same tokens).
    /// Kept for the model served at start only.
    #[arg(long, value_name = "MODEL")]
    pub draft: Option<String>,
    /// Another name people use to reach this machine (repeatable). Hearth always answers to
    /// its IP addresses, localhost, hearth.local and this machine's host name; any other name
    /// is refused, so a web page cannot reach Hearth by pointing its own name at it.
    #[arg(long = "host-name", value_name = "NAME")]
    pub host_names: Vec<String>,
    /// A web page's origin (e.g. http://192.168.1.20:3000) whose scripts may call the API with
    /// an API key (repeatable). Requests from any other page are refused.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// The longest reply on the household page, in tokens; a longer one stops there as "cut
    /// short" and the page offers Continue.
    #[arg(long, default_value_t = hearth_server::household::DEFAULT_REPLY_TOKENS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65536))]
    pub reply_tokens: usize,
    /// Sampling temperature for the household page's replies and for API requests that set
    /// none (default: the model's recommended value, else 0.8). 0 always picks the most
    /// likely next word, so the same question gets the same reply.
    #[arg(long, value_parser = parse_temperature)]
    pub temperature: Option<f32>,
    /// Be the head of the household's pool of machines: accept the machines paired with
    /// `hearth pool invite` (QUIC on UDP and a key query on TCP, both at --pool-listen).
    #[arg(long)]
    pub pool: bool,
    /// Where the pool listens (with --pool).
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], hearth_pool::DEFAULT_PORT)))]
    pub pool_listen: SocketAddr,
}

/// A temperature from 0 to 2, said in words otherwise.
fn parse_temperature(s: &str) -> Result<f32, String> {
    let t: f32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number; use 0 to 2, e.g. 0.7"))?;
    if (0.0..=2.0).contains(&t) {
        Ok(t)
    } else {
        Err(format!(
            "{t} is outside 0 to 2; 0 is the most predictable, 1 the model's own"
        ))
    }
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    // The listener policy first: refusing takes no model load. With the household page, a
    // non-loopback listener is allowed without configured keys: `/v1` then needs a household
    // key or a logged-in session, and first-run setup needs the code printed below.
    let auth = if a.no_household {
        Auth::new(a.listen, a.api_keys.clone())?
    } else {
        Auth::household(a.listen, a.api_keys.clone())
    };
    // Open (and migrate) the household's data before the model loads, so a problem there is
    // reported at once. The data directory stays locked until this function returns: a second
    // server on it would mark this one's live replies interrupted and fight it for the database.
    let (_data_lock, store) = if a.no_household {
        (None, None)
    } else {
        let (lock, store) = open_store(a.listen)?;
        (Some(lock), Some(store))
    };
    if a.max_seqs == 0 {
        bail!("--max-seqs must be at least 1");
    }
    if a.pool && store.is_none() {
        bail!("--pool keeps the paired machines in the household's data; drop --no-household");
    }
    let store = store.map(Arc::new);
    let pool_store = store.clone().filter(|_| a.pool);
    // Without --model, the model the owner chose on the page, else the default.
    let chosen = match (&a.model, &store) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(s)) => s.setting("model")?,
        (None, None) => None,
    };
    // Checked against hearth.lock: refused if its bytes are not the locked ones, served with
    // the locked template and defaults.
    let load::Served {
        loaded,
        model,
        ctx,
        pending,
    } = load::load_served(chosen.as_deref(), a.ctx)?;
    note_pending(&loaded.name, &pending);
    let draft = match &a.draft {
        Some(spec) => Some(load::open_draft(
            spec,
            &loaded.name,
            &model,
            a.no_speculation,
        )?),
        None => None,
    };
    let gen = GenOptions {
        ctx,
        temperature: a.temperature,
        ..GenOptions::defaults()
    };
    let defaults = loaded.sampler_config(&gen);
    let threads = a
        .threads
        .unwrap_or_else(hearth_kernels::pool::physical_cores)
        .max(1);
    let sizing = Sizing {
        ctx: a.ctx,
        max_seqs: a.max_seqs,
        threads,
        prefill_chunk: a.prefill_chunk.max(1),
        prefix_cache: !a.no_prefix_cache,
        speculation: if a.no_speculation {
            Speculation::Off
        } else {
            Speculation::PromptLookup
        },
        temperature: a.temperature,
    };
    let (kv_budget, planned) = check_plan(
        &model,
        &loaded.name,
        draft.as_ref(),
        ctx,
        a.max_seqs,
        threads,
    )?;
    let opts = ServeOptions {
        engine: sizing.engine(kv_budget, ctx),
        max_queue: a.max_queue,
        access: access(&a)?,
        ..ServeOptions::default()
    };
    let household = match store {
        Some(store) => Some(household(
            store,
            a.listen,
            planned,
            sizing,
            a.reply_tokens,
            a.pool,
        )?),
        None => None,
    };
    let id = loaded.name.clone();
    let embed = if a.no_embeddings { None } else { embed_model() };
    let state = AppState::with_household(
        ServeModel {
            id: id.clone(),
            model,
            tokenizer: loaded.tokenizer,
            template: loaded.template,
            defaults,
            draft,
        },
        embed,
        opts,
        auth.clone(),
        household,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mdns = !a.no_mdns && !a.no_household;
    runtime.block_on(async {
        // The pool's head lives as long as the server (dropping it ends the announcement).
        let _pool = match pool_store {
            Some(store) => Some(super::pool::start_head(a.pool_listen, store, mdns).await?),
            None => None,
        };
        serve(state, a.listen, id, auth.required(), threads, mdns).await
    })
}

/// The names and origins served: the defaults, this machine's host name, and the keeper's.
fn access(a: &ServeArgs) -> anyhow::Result<hearth_server::Access> {
    let mut access = hearth_server::Access::default();
    let own = gethostname::gethostname();
    if let Some(own) = own.to_str().filter(|n| !n.is_empty()) {
        // A host name the Host check cannot hold (odd characters) is simply not added.
        access = access.clone().with_host_name(own).unwrap_or(access);
        if !own.contains('.') {
            let local = format!("{own}.local");
            access = access.clone().with_host_name(&local).unwrap_or(access);
        }
    }
    for n in &a.host_names {
        access = access.with_host_name(n).context("--host-name")?;
    }
    for o in &a.cors_origins {
        access = access.with_cors_origin(o).context("--cors-origin")?;
    }
    Ok(access)
}

/// The household's storage in the data directory, opened only once this process holds the
/// directory (a second server is refused with the first one's pid, before it changes anything).
fn open_store(listen: SocketAddr) -> anyhow::Result<(hearth_fetch::HomeLock, hearth_store::Store)> {
    let home = Home::from_env()?;
    let lock = home.lock(&format!("hearth serve --listen {listen}"))?;
    let path = home.root().join("household.db");
    let store = hearth_store::Store::open(&path)
        .with_context(|| format!("cannot open the household's data at {}", path.display()))?;
    Ok((lock, store))
}

fn household(
    store: Arc<hearth_store::Store>,
    listen: SocketAddr,
    planned: Planned,
    sizing: Sizing,
    reply_tokens: usize,
    pool: bool,
) -> anyhow::Result<HouseholdOptions> {
    // Setup needs the code on loopback too: any web page the keeper has open could otherwise
    // reach a fresh Hearth first and make itself the owner.
    let set_up = store.is_set_up()?;
    let setup_code = (!set_up).then(|| {
        let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
        let here = if listen.ip().is_loopback() || listen.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], listen.port()))
        } else {
            listen
        };
        eprintln!("First-run setup needs this code: {code}");
        eprintln!(
            "  open {}/#setup={code} to set up your household",
            hearth_server::url(here)
        );
        code
    });
    Ok(HouseholdOptions {
        store: store.clone(),
        setup_code,
        admin: Some(Arc::new(Admin {
            planned: std::sync::Mutex::new(planned),
            sizing,
            pool: pool.then_some(store),
        })),
        reply_tokens,
    })
}

/// How the engine is sized from the command line, for the first model and any the owner
/// switches to later.
#[derive(Clone, Copy, Debug)]
struct Sizing {
    /// `--ctx`; without it, each model's locked context.
    ctx: Option<usize>,
    max_seqs: usize,
    threads: usize,
    prefill_chunk: usize,
    prefix_cache: bool,
    speculation: Speculation,
    /// `--temperature`, kept for every model switched to.
    temperature: Option<f32>,
}

impl Sizing {
    fn engine(&self, kv_budget: usize, ctx: usize) -> EngineOptions {
        EngineOptions {
            ctx,
            threads: self.threads,
            max_seqs: self.max_seqs,
            prefill_chunk: self.prefill_chunk,
            max_batch_tokens: (self.prefill_chunk + self.max_seqs).max(512),
            keep_logits: false,
            prefix_cache: self.prefix_cache,
            kv_budget_bytes: Some(kv_budget),
            speculation: self.speculation,
        }
    }
}

/// The owner's settings page, backed by hearth-fetch and the planner.
struct Admin {
    /// The served model's plan; replaced when the owner switches models.
    planned: std::sync::Mutex<Planned>,
    sizing: Sizing,
    /// With `--pool`: the household's data, where pairing codes and members live.
    pool: Option<Arc<hearth_store::Store>>,
}

/// What the served model was planned with, to re-plan against the memory available now.
struct Planned {
    facts: hearth_plan::ModelFacts,
    request: hearth_plan::Request,
}

impl Admin {
    /// What the served model holds by its plan: the memory this machine reports free is what
    /// is left beside it, so advice and plans for the model in use add it back.
    fn held_bytes(&self, machine: &hearth_plan::Machine) -> u64 {
        let p = self.planned.lock().unwrap_or_else(|p| p.into_inner());
        hearth_plan::plan(&p.facts, machine, &p.request).map_or(0, |plan| plan.total_bytes)
    }
}

impl hearth_server::household::Admin for Admin {
    fn installed(&self) -> serde_json::Value {
        let Ok(home) = Home::from_env() else {
            return serde_json::json!([]);
        };
        let items = hearth_fetch::list_installed(&home).unwrap_or_default();
        let catalog = Catalog::load(&home).ok();
        serde_json::Value::Array(
            items
                .into_iter()
                // The embedding model serves /v1/embeddings beside the chat model; it cannot chat.
                .filter(|m| m.name != hearth_server::EMBED_MODEL)
                .filter(|m| m.full_path(&home).exists())
                .map(|m| {
                    // Without a chat template it is a base model, which continues text but
                    // cannot hold a conversation.
                    let entry = catalog.as_ref().and_then(|c| c.get(&m.name));
                    let chat = super::advise::can_chat(entry, Some(&m.full_path(&home)));
                    serde_json::json!({"name": m.name, "size": m.size, "chat": chat})
                })
                .collect(),
        )
    }

    fn catalog(&self) -> serde_json::Value {
        let Ok(home) = Home::from_env() else {
            return serde_json::json!([]);
        };
        let installed: Vec<String> = hearth_fetch::list_installed(&home)
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.name)
            .collect();
        let Ok(catalog) = Catalog::load(&home) else {
            return serde_json::json!([]);
        };
        serde_json::Value::Array(
            catalog
                .entries()
                .map(|e| {
                    // Whether it can chat is the catalog's to say, before any download and
                    // whatever else Settings could or could not work out.
                    serde_json::json!({"name": e.name, "description": e.description,
                        "size": e.size, "installed": installed.contains(&e.name),
                        "chat": super::advise::can_chat(Some(e), None)})
                })
                .collect(),
        )
    }

    fn plan(&self) -> Option<serde_json::Value> {
        let mut machine = hearth_host::detect(false).ok()?;
        machine.memory_bytes += self.held_bytes(&machine);
        let plan = {
            let p = self.planned.lock().unwrap_or_else(|p| p.into_inner());
            hearth_plan::plan(&p.facts, &machine, &p.request).ok()?
        };
        let mut v = serde_json::to_value(&plan).ok()?;
        v["machine"] = serde_json::json!(machine.label);
        Some(v)
    }

    fn advice(&self, in_use: &str, idle: bool) -> Option<serde_json::Value> {
        // The household's request: the context models are served with unless the keeper gave
        // --ctx (the context the lock pins a model with first), for every conversation at once.
        let ctx = self.sizing.ctx.unwrap_or(crate::load::DEFAULT_CTX);
        let held = hearth_host::detect(false)
            .map(|m| self.held_bytes(&m))
            .unwrap_or(0);
        match super::advise::household_advice(ctx, self.sizing.max_seqs, in_use, held, idle) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("no model advice for Settings: {e:#}");
                None
            }
        }
    }

    fn pull(&self, name: &str, progress: &(dyn Fn(u64, Option<u64>) + Sync)) -> Result<(), String> {
        let home = Home::from_env().map_err(|e| e.to_string())?;
        let catalog = Catalog::load(&home).map_err(|e| e.to_string())?;
        if catalog.get(name).is_none() {
            return Err(format!("{name} is not in Hearth's catalog"));
        }
        struct P<'a> {
            f: &'a (dyn Fn(u64, Option<u64>) + Sync),
            total: std::sync::Mutex<Option<u64>>,
        }
        impl hearth_fetch::Progress for P<'_> {
            fn start(&self, _label: &str, total: Option<u64>) {
                *self.total.lock().unwrap_or_else(|p| p.into_inner()) = total;
                (self.f)(0, total);
            }
            fn set(&self, done: u64) {
                let total = *self.total.lock().unwrap_or_else(|p| p.into_inner());
                (self.f)(done, total);
            }
            fn finish(&self, _message: &str) {}
        }
        let p = P {
            f: progress,
            total: std::sync::Mutex::new(None),
        };
        hearth_fetch::pull(&home, &catalog, name, &p)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn load(&self, name: &str) -> Result<(ServeModel, EngineOptions), String> {
        let z = self.sizing;
        let load::Served {
            loaded,
            model,
            ctx,
            pending,
        } = load::load_served(Some(name), z.ctx).map_err(|e| format!("{e:#}"))?;
        note_pending(&loaded.name, &pending);
        let gen = GenOptions {
            ctx,
            temperature: z.temperature,
            ..GenOptions::defaults()
        };
        // Planned against the memory available now, with the current model still loaded.
        let (kv_budget, planned) =
            check_plan(&model, &loaded.name, None, ctx, z.max_seqs, z.threads)
                .map_err(|e| format!("{e:#}"))?;
        *self.planned.lock().unwrap_or_else(|p| p.into_inner()) = planned;
        let defaults = loaded.sampler_config(&gen);
        Ok((
            ServeModel {
                id: loaded.name,
                model,
                tokenizer: loaded.tokenizer,
                template: loaded.template,
                defaults,
                // A draft is for the model it was checked against.
                draft: None,
            },
            z.engine(kv_budget, ctx),
        ))
    }

    fn lock_pending(&self) -> serde_json::Value {
        crate::cmd::lock::pending_json()
    }

    fn lock_accept(&self, model: &str) -> Result<serde_json::Value, String> {
        crate::cmd::lock::accept_pins(model)
            .map(|changes| serde_json::json!({"model": model, "accepted": changes}))
            .map_err(|e| format!("{e:#}"))
    }

    fn pool_invite(&self) -> Result<serde_json::Value, String> {
        let store = self.pool.as_ref().ok_or_else(pool_off)?;
        let code = hearth_pool::head::invite(store).map_err(|e| e.to_string())?;
        Ok(serde_json::json!({
            "code": code.to_string(),
            "valid_secs": hearth_pool::INVITE_VALID_SECS,
            "tries": hearth_pool::INVITE_TRIES,
        }))
    }

    fn pool_members(&self) -> Result<serde_json::Value, String> {
        let store = self.pool.as_ref().ok_or_else(pool_off)?;
        let members = store.pool_members().map_err(|e| e.to_string())?;
        Ok(serde_json::Value::Array(
            members
                .into_iter()
                .map(|m| {
                    let link: Option<serde_json::Value> = m
                        .report
                        .as_deref()
                        .and_then(|r| serde_json::from_str(r).ok());
                    serde_json::json!({
                        "name": m.name, "key": m.key, "paired": m.paired,
                        "last_seen": m.last_seen, "link": link,
                    })
                })
                .collect(),
        ))
    }
}

fn pool_off() -> String {
    "this server is not the head of a pool: start it with hearth serve --pool".to_string()
}

/// Says at start that this Hearth would serve `name` differently than the lock pins, and that
/// the locked values stay until the keeper accepts.
fn note_pending(name: &str, pending: &[hearth_fetch::lockfile::Change]) {
    if pending.is_empty() {
        return;
    }
    eprintln!("note: this Hearth would serve {name} differently than hearth.lock pins; it keeps the locked values until you accept the change (in Settings, or `hearth lock accept {name}`):");
    for c in pending {
        eprintln!("  {}: locked {}, this Hearth: {}", c.what, c.locked, c.now);
    }
}

/// Asks the planner whether this model, context and number of conversations fit this
/// machine's available memory; refuses with the planner's advice when they do not. Returns the
/// KV budget the plan counted (every conversation at the full context).
fn check_plan(
    model: &hearth_model::Model,
    name: &str,
    draft: Option<&hearth_model::Model>,
    ctx: usize,
    users: usize,
    threads: usize,
) -> anyhow::Result<(usize, Planned)> {
    let facts = hearth_plan::ModelFacts::from_header(model.gguf().header())
        .with_context(|| format!("cannot plan {name}"))?;
    let ctx = ctx.clamp(1, facts.config.max_ctx().max(1));
    let mut req = hearth_plan::Request::new(ctx, users);
    req.threads = threads;
    if let Some(d) = draft {
        let facts = hearth_plan::ModelFacts::from_header(d.gguf().header())
            .context("cannot plan the draft model")?;
        req.draft = Some(std::sync::Arc::new(facts));
    }
    let machine = hearth_host::detect(false)?;
    let plan = hearth_plan::plan(&facts, &machine, &req)?;
    if !plan.fits {
        let gib = |b: u64| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64);
        let with_draft = if plan.draft_bytes > 0 {
            format!(", draft model {}", gib(plan.draft_bytes))
        } else {
            String::new()
        };
        let mut msg = format!(
            "{name} with a {ctx}-token context for {users} conversations needs {} (weights {}, KV cache {}{with_draft}), but this machine has {} available",
            gib(plan.total_bytes),
            gib(plan.weights_bytes),
            gib(plan.kv_bytes),
            gib(plan.usable_bytes)
        );
        for a in &plan.advice {
            msg.push_str(&format!("\n  - {a}"));
        }
        bail!("{msg}\n(`hearth plan {name}` shows the details; --ctx and --max-seqs change the request)");
    }
    Ok((
        plan.kv_bytes as usize,
        Planned {
            facts,
            request: req,
        },
    ))
}

/// The embedding model: installed, or pulled now when the network allows; without it the
/// server still starts and `/v1/embeddings` says how to get it.
fn embed_model() -> Option<EmbedModel> {
    let name = hearth_server::EMBED_MODEL;
    let home = Home::from_env().ok()?;
    let catalog = Catalog::load(&home).ok()?;
    let dir = match hearth_fetch::resolve(&home, &catalog, name) {
        Ok(r) => r.path,
        Err(_) => {
            match hearth_fetch::ensure(&home, &catalog, name, &crate::cmd::pull::progress()) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("note: no embeddings ({name} could not be pulled: {e}); /v1/embeddings will say how to get it");
                    return None;
                }
            }
        }
    };
    match hearth_embed::Embedder::open(&dir) {
        Ok(embedder) => Some(EmbedModel {
            id: name.to_string(),
            embedder,
        }),
        Err(e) => {
            eprintln!(
                "note: no embeddings ({name} at {} does not load: {e})",
                dir.display()
            );
            None
        }
    }
}

async fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    id: String,
    keyed: bool,
    threads: usize,
    mdns: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} (is another server using that port? choose one with --listen)"
        )
    })?;
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!(
        "Hearth is serving {id} at {} (context {} tokens, {threads} threads)",
        hearth_server::url(local),
        state.ctx()
    );
    let key_note = if keyed { " (API key required)" } else { "" };
    let base = hearth_server::url(local);
    // Each API family at the base URL its clients are given.
    eprintln!("  OpenAI API: {base}/v1{key_note}");
    eprintln!("  Anthropic API: {base} (/v1/messages){key_note}");
    eprintln!("  Ollama API: {base} (/api/chat, /api/tags...){key_note}");
    // Beyond loopback: the addresses to type, and `hearth.local` announced by mDNS (never
    // multicast for a loopback-only server).
    let _announcer = if local.ip().is_loopback() {
        None
    } else {
        for ip in crate::mdns::reachable_ips(local) {
            eprintln!(
                "  on the network: {}",
                hearth_server::url(SocketAddr::new(ip, local.port()))
            );
        }
        if mdns {
            let name = state
                .household_name()
                .unwrap_or_else(|| "Hearth".to_string());
            match crate::mdns::announce(local, &name) {
                Ok(a) => {
                    eprintln!(
                        "  by name: http://hearth.local:{} (mDNS; turn off with --no-mdns)",
                        local.port()
                    );
                    Some(a)
                }
                Err(e) => {
                    eprintln!("note: cannot announce hearth.local on the network: {e:#}");
                    None
                }
            }
        } else {
            None
        }
    };
    let app = hearth_server::router(state.clone());
    let shutdown = {
        let state = state.clone();
        async move {
            stop_signal().await;
            let n = state.in_flight();
            eprintln!(
                "stopping: finishing {n} request(s) in flight (press Ctrl-C again to cancel them)"
            );
            state.begin_shutdown();
            tokio::select! {
                _ = drained(&state) => {}
                _ = stop_signal() => {
                    eprintln!("cancelling the requests in flight");
                    std::process::exit(130);
                }
                _ = tokio::time::sleep(Duration::from_secs(120)) => {
                    eprintln!("requests still running after 2 minutes; cancelling them");
                    std::process::exit(1);
                }
            }
        }
    };
    // Connections are bounded below the open-file limit, so it is raised as far as allowed.
    let limits = match hearth_server::listen::raise_open_file_limit() {
        Ok(files) => hearth_server::listen::ListenOptions::for_open_files(files),
        Err(e) => {
            eprintln!("note: cannot raise the open-file limit ({e}); allowing fewer connections");
            hearth_server::listen::ListenOptions::default()
        }
    };
    hearth_server::listen::serve(listener, app, limits, shutdown)
        .await
        .context("the server failed")?;
    eprintln!("stopped");
    Ok(())
}

async fn drained(state: &AppState) {
    while state.in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
