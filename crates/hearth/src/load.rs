//! Finding, pulling and opening a model for the commands that run one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use hearth_engine::{Engine, EngineOptions, Speculation};
use hearth_fetch::lockfile::{self, TemplateSource};
use hearth_fetch::{Catalog, CatalogEntry, Home};
use hearth_gguf::Gguf;
use hearth_model::chat::{ChatMessage, ChatTemplate};
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};

/// The context window, in tokens, when no `--ctx` is given.
pub const DEFAULT_CTX: usize = 4096;

/// Generation settings shared by `run` and `chat`.
#[derive(Args, Debug, Clone)]
pub struct GenOptions {
    /// Most tokens to generate.
    #[arg(short = 'n', long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy (default: the model's recommended value, else 0.8).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability adds up to P (1 = off).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than P times the most likely one (0 = off).
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Penalise tokens seen in the last 64 (1 = off).
    #[arg(long)]
    pub repeat_penalty: Option<f32>,
    /// Random seed; the same seed and settings give the same output (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads (default: physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Stop when the answer contains this text (repeatable); the text itself is not printed.
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Context window in tokens (at most the model's trained context, or as far as its RoPE
    /// scaling reaches; a longer one is refused).
    #[arg(long, default_value_t = DEFAULT_CTX)]
    pub ctx: usize,
    /// Decode one token per step instead of verifying tokens drafted from the text so far
    /// (prompt lookup; exact, the same output either way).
    #[arg(long)]
    pub no_speculation: bool,
    /// A small model with the same tokenizer (catalog name or .gguf path) that drafts tokens
    /// for this one to verify several at a time. Greedy output is identical to that without it;
    /// sampled output follows the same distribution (not the same tokens).
    #[arg(long, value_name = "MODEL")]
    pub draft: Option<String>,
}

impl GenOptions {
    /// The command-line defaults, for commands that do not take generation flags.
    pub fn defaults() -> GenOptions {
        GenOptions {
            max_tokens: 512,
            temperature: None,
            top_k: None,
            top_p: None,
            min_p: None,
            repeat_penalty: None,
            seed: None,
            threads: None,
            stop: Vec::new(),
            ctx: DEFAULT_CTX,
            no_speculation: false,
            draft: None,
        }
    }
}

/// A model ready to run: weights, tokenizer, template and catalog settings.
pub struct Loaded {
    pub name: String,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub entry: Option<CatalogEntry>,
    /// The defaults `hearth.lock` pins (for `serve`); `None` uses this Hearth's.
    pub pinned: Option<lockfile::GenDefaults>,
}

/// A message with plain text content.
pub fn msg(role: &str, text: &str) -> ChatMessage {
    ChatMessage {
        role: role.to_string(),
        content: Some(text.to_string()),
        tool_calls: None,
        tool_call_id: None,
        name: None,
    }
}

/// Opens the GGUF file named by `spec` (catalog name, installed name or path; `None` is the
/// default model), pulling catalog models that are missing.
pub fn open_gguf(spec: Option<&str>) -> anyhow::Result<(Gguf, Resolved)> {
    let r = resolve(spec)?;
    let gguf = Gguf::open(&r.path).with_context(|| format!("cannot open {}", r.path.display()))?;
    Ok((gguf, r))
}

/// Where a model is and what the catalog says about it.
pub struct Resolved {
    pub name: String,
    pub path: PathBuf,
    pub entry: Option<CatalogEntry>,
}

fn resolve(spec: Option<&str>) -> anyhow::Result<Resolved> {
    let home = Home::from_env()?;
    let catalog = Catalog::load(&home)?;
    let name = match spec {
        Some(s) => s.to_string(),
        None => catalog.default_model().name.clone(),
    };
    if let Some(entry) = catalog.get(&name) {
        let path = hearth_fetch::ensure(&home, &catalog, &name, &crate::cmd::pull::progress())?;
        return Ok(Resolved {
            name,
            path,
            entry: Some(entry.clone()),
        });
    }
    let r = hearth_fetch::resolve(&home, &catalog, &name)?;
    if r.path.is_dir() {
        bail!(
            "{} is a directory; give the path of a .gguf file",
            r.path.display()
        );
    }
    Ok(Resolved {
        name: r.name,
        path: r.path,
        entry: r.entry,
    })
}

/// Resolves, opens and builds everything `run` and `chat` need, with the template and defaults
/// this Hearth would use (the lock is for what the household is served: see [`load_served`]).
pub fn load(spec: Option<&str>, gen: &GenOptions) -> anyhow::Result<(Loaded, Model)> {
    let (gguf, r) = open_gguf(spec)?;
    let (model, tokenizer) = open_model(gguf, &r)?;
    let md = model.gguf().metadata();
    let template = match template_text(r.entry.as_ref(), md)? {
        Some((text, TemplateSource::Catalog)) => Some(
            compile(&text, &tokenizer).context("the catalog's chat template does not compile")?,
        ),
        Some((text, TemplateSource::Gguf)) => {
            Some(compile(&text, &tokenizer).context("the model's chat template does not compile")?)
        }
        None => None,
    };
    note_ctx_cap(&model, &r.name, gen.ctx, gen.ctx != DEFAULT_CTX)?;
    Ok((
        Loaded {
            name: r.name,
            tokenizer,
            template,
            entry: r.entry,
            pinned: None,
        },
        model,
    ))
}

/// A model loaded for `serve`, as `hearth.lock` pins it.
pub struct Served {
    pub loaded: Loaded,
    pub model: Model,
    /// The context to serve: `--ctx`, else the locked default.
    pub ctx: usize,
    /// What this Hearth would use instead of the locked values, waiting for the keeper.
    pub pending: Vec<lockfile::Change>,
}

/// Resolves and opens the model `serve` is asked for, checked against `hearth.lock` (see
/// hearth-fetch's `lockfile` module): its bytes must be the locked ones (re-hashed only when
/// size, modification time or inode changed), and it is served with the locked template and
/// defaults even where this Hearth would use others (those are reported, for the keeper to
/// accept). A model served for the first time is locked as this Hearth serves it.
/// `ctx` is `--ctx` when given.
pub fn load_served(spec: Option<&str>, ctx: Option<usize>) -> anyhow::Result<Served> {
    let home = Home::from_env()?;
    refuse_catalog_repin(&home, spec)?;
    let r = resolve(spec)?;
    let progress = crate::cmd::pull::progress();
    let file = lockfile::ServedFile {
        known_sha256: index_digest(&home, &r.path),
        path: r.path.clone(),
    };
    let checked = lockfile::check_served(&home, &r.name, &[file], &progress)?;
    let gguf = Gguf::open(&r.path).with_context(|| format!("cannot open {}", r.path.display()))?;
    let (model, tokenizer) = open_model(gguf, &r)?;
    let md = model.gguf().metadata();
    let now = current_pins(r.entry.as_ref(), md)?;
    let (pins, pending) = match checked {
        lockfile::Checked::New { files } => {
            let entry = lockfile::record_new(&home, &r.name, files, now.clone())?;
            lockfile::served_pins(&entry, &now)
        }
        lockfile::Checked::Locked { entry, .. } => lockfile::served_pins(&entry, &now),
    };
    let template = match &pins.template {
        None => None,
        Some(t) => {
            // Kept in the lock unless it is the pinned file's own.
            let text = match &t.text {
                Some(text) => text.clone(),
                None => md
                    .opt_str("tokenizer.chat_template")?
                    .unwrap_or_default()
                    .to_string(),
            };
            if lockfile::TemplateLock::new(&text, t.source).sha256 != t.sha256 {
                bail!(
                    "the chat template the lock pins for {} is not in the lock or the model file any more; `hearth lock accept {}` pins the one this Hearth would use",
                    r.name,
                    r.name
                );
            }
            Some(compile(&text, &tokenizer).with_context(|| {
                format!(
                    "the chat template the lock pins for {} does not compile in this Hearth; `hearth lock accept {}` pins the one this Hearth would use",
                    r.name, r.name
                )
            })?)
        }
    };
    let asked = ctx.is_some();
    let ctx = ctx.unwrap_or(pins.defaults.context as usize);
    note_ctx_cap(&model, &r.name, ctx, asked)?;
    Ok(Served {
        loaded: Loaded {
            name: r.name,
            tokenizer,
            template,
            entry: r.entry,
            pinned: Some(pins.defaults),
        },
        model,
        ctx,
        pending,
    })
}

/// A newer Hearth's catalog may pin another file for a locked catalog model; resolving would
/// download it over the locked one. Refused before anything is downloaded.
fn refuse_catalog_repin(home: &Home, spec: Option<&str>) -> anyhow::Result<()> {
    let catalog = Catalog::load(home)?;
    let name = spec.unwrap_or(&catalog.default_model().name);
    let (Some(entry), Some(locked)) =
        (catalog.get(name), lockfile::load(home)?.models.remove(name))
    else {
        return Ok(());
    };
    if locked.files.values().any(|f| f.sha256 == entry.sha256) || locked.files.len() != 1 {
        return Ok(());
    }
    bail!(
        "this Hearth's catalog pins another file for {name} (sha256 {}) than hearth.lock does, so Hearth serves neither and downloaded nothing. To move to it: `hearth pull {name}`, then `hearth lock accept {name}`; or keep the Hearth version that wrote the lock",
        entry.sha256
    )
}

/// The digest the model index holds for `path`, when the index's own stamp of the file still
/// holds (pulls verified it against the catalog or computed it), so a first lock need not hash.
fn index_digest(home: &Home, path: &Path) -> Option<String> {
    let canon = std::fs::canonicalize(path).ok()?;
    hearth_fetch::list_installed(home)
        .ok()?
        .into_iter()
        .find(|m| std::fs::canonicalize(m.full_path(home)).is_ok_and(|p| p == canon))
        .filter(|m| m.verified.is_some() && m.verified == hearth_fetch::Stamp::of(path))
        .map(|m| m.sha256)
}

/// What this Hearth would serve a model with: the template it picks (the catalog's, else the
/// file's `tokenizer.chat_template`) and the defaults a request gets for fields it leaves out
/// (the catalog's recommendation over the sampler's defaults; the context without `--ctx`).
pub fn current_pins(
    entry: Option<&CatalogEntry>,
    md: &hearth_gguf::Metadata,
) -> anyhow::Result<lockfile::Pins> {
    let template =
        template_text(entry, md)?.map(|(text, source)| lockfile::TemplateLock::new(&text, source));
    let c = catalog_sampler(entry, &GenOptions::defaults());
    let f = lockfile::f32_decimal;
    Ok(lockfile::Pins {
        template,
        defaults: lockfile::GenDefaults {
            context: DEFAULT_CTX as u64,
            temperature: f(c.temperature),
            top_k: c.top_k as u64,
            top_p: f(c.top_p),
            min_p: f(c.min_p),
            repeat_penalty: f(c.repeat_penalty),
            penalty_last_n: c.penalty_last_n as u64,
        },
    })
}

/// The chat template Hearth uses for a model and where it comes from: the catalog's, which
/// replaces the file's, else the file's own; `None` for a base model.
fn template_text(
    entry: Option<&CatalogEntry>,
    md: &hearth_gguf::Metadata,
) -> anyhow::Result<Option<(String, TemplateSource)>> {
    if let Some(src) = entry.and_then(|e| e.template.as_deref()) {
        return Ok(Some((src.to_string(), TemplateSource::Catalog)));
    }
    Ok(md
        .opt_str("tokenizer.chat_template")
        .context("the model's chat template is not text")?
        .map(|t| (t.to_string(), TemplateSource::Gguf)))
}

fn compile(text: &str, tokenizer: &Tokenizer) -> anyhow::Result<ChatTemplate> {
    let token = |id: Option<u32>| {
        id.map(|b| tokenizer.token_text(b).to_string())
            .unwrap_or_default()
    };
    Ok(ChatTemplate::new(
        text,
        &token(tokenizer.bos()),
        &token(tokenizer.eos()),
    )?)
}

fn open_model(gguf: Gguf, r: &Resolved) -> anyhow::Result<(Model, Tokenizer)> {
    // The model first: an unsupported architecture or tensor type is the clearest error.
    let model =
        Model::from_gguf(gguf).with_context(|| format!("cannot load {}", r.path.display()))?;
    let tokenizer =
        Tokenizer::from_gguf(model.gguf().metadata()).context("cannot build the tokenizer")?;
    Ok((model, tokenizer))
}

/// A context beyond what the model reaches: refused in words when the person asked for it,
/// capped with a note when it is only the default.
fn note_ctx_cap(model: &Model, name: &str, ctx: usize, asked: bool) -> anyhow::Result<()> {
    let max = model.config().max_ctx();
    if ctx > max {
        if asked {
            model
                .config()
                .check_ctx(ctx)
                .with_context(|| format!("--ctx {ctx} is too long for {name}"))?;
        }
        eprintln!("note: context capped at {max} tokens, the most {name} reaches");
    }
    Ok(())
}

/// Command-line values, else the catalog's recommendation, else the sampler's defaults.
fn catalog_sampler(entry: Option<&CatalogEntry>, gen: &GenOptions) -> SamplerConfig {
    let d = entry.map(|e| e.defaults.clone()).unwrap_or_default();
    let base = SamplerConfig::default();
    SamplerConfig {
        temperature: gen
            .temperature
            .or(d.temperature)
            .unwrap_or(base.temperature),
        top_k: gen
            .top_k
            .or(d.top_k.map(|k| k as usize))
            .unwrap_or(base.top_k),
        top_p: gen.top_p.or(d.top_p).unwrap_or(base.top_p),
        min_p: gen.min_p.or(d.min_p).unwrap_or(base.min_p),
        repeat_penalty: gen
            .repeat_penalty
            .or(d.repeat_penalty)
            .unwrap_or(base.repeat_penalty),
        seed: gen.seed.unwrap_or_else(rand::random),
        ..base
    }
}

impl Loaded {
    /// Renders `messages` with the chat template and tokenizes the result; text from messages
    /// is never parsed into control tokens.
    pub fn chat_tokens(&self, messages: &[ChatMessage]) -> anyhow::Result<Vec<u32>> {
        let Some(t) = &self.template else {
            bail!(
                "{} has no chat template (it is a base model that only continues text); run it with --raw, e.g. `hearth run {} --raw \"Once upon a time\"`",
                self.name,
                self.name
            );
        };
        let rendered = t
            .render(messages, true, None)
            .context("the chat template failed to render")?;
        Ok(self
            .tokenizer
            .encode_rendered(&rendered, self.tokenizer.add_bos()))
    }

    /// Sampler settings: command-line values, else the locked defaults (for `serve`), else the
    /// catalog's recommendation, else the sampler's defaults.
    pub fn sampler_config(&self, gen: &GenOptions) -> SamplerConfig {
        let mut c = catalog_sampler(self.entry.as_ref(), gen);
        if let Some(p) = &self.pinned {
            // Locked numbers are the decimals of the f32s they were made from.
            c.temperature = gen.temperature.unwrap_or(p.temperature as f32);
            c.top_k = gen.top_k.unwrap_or(p.top_k as usize);
            c.top_p = gen.top_p.unwrap_or(p.top_p as f32);
            c.min_p = gen.min_p.unwrap_or(p.min_p as f32);
            c.repeat_penalty = gen.repeat_penalty.unwrap_or(p.repeat_penalty as f32);
            c.penalty_last_n = p.penalty_last_n as usize;
        }
        c
    }
}

/// Opens the draft model `spec` (a catalog name, pulled if missing, or a path) for `target`,
/// refusing one whose vocabulary differs. `no_speculation` is the command's own flag.
pub fn open_draft(
    spec: &str,
    target_name: &str,
    target: &Model,
    no_speculation: bool,
) -> anyhow::Result<Model> {
    if no_speculation {
        bail!("--draft drafts tokens for speculative decoding, which --no-speculation turns off; give one or the other");
    }
    let (gguf, r) = open_gguf(Some(spec))?;
    let draft = Model::from_gguf(gguf)
        .with_context(|| format!("cannot load the draft model {}", r.path.display()))?;
    if let Err(e) = hearth_engine::check_draft(target, &draft) {
        let why = match e {
            hearth_engine::Error::DraftVocabulary(why) => why,
            other => other.to_string(),
        };
        bail!(
            "{} cannot draft for {target_name}: their vocabularies differ ({why}). A draft model must use the same tokenizer as the model it drafts for, such as a smaller model of the same family",
            r.name
        );
    }
    Ok(draft)
}

/// The engine for `run` and `chat`: [`engine`] with the draft model `--draft` names.
pub fn engine_for(
    model: Model,
    loaded: &Loaded,
    gen: &GenOptions,
    max_seqs: usize,
) -> anyhow::Result<Engine> {
    let draft = match &gen.draft {
        Some(spec) => Some(open_draft(spec, &loaded.name, &model, gen.no_speculation)?),
        None => None,
    };
    let mut engine = engine(model, gen, max_seqs);
    if let Some(d) = draft {
        engine.set_draft(d)?;
    }
    Ok(engine)
}

/// An engine over `model` sized for `max_seqs` sequences with the command line's context and
/// threads.
pub fn engine(model: Model, gen: &GenOptions, max_seqs: usize) -> Engine {
    let threads = gen
        .threads
        .unwrap_or_else(hearth_kernels::pool::physical_cores)
        .max(1);
    Engine::new(
        model,
        EngineOptions {
            ctx: gen.ctx,
            threads,
            max_seqs,
            speculation: if gen.no_speculation {
                Speculation::Off
            } else {
                Speculation::PromptLookup
            },
            ..EngineOptions::default()
        },
    )
}
