//! Finding, pulling and opening a model for the commands that run one.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use hearth_engine::{Engine, EngineOptions};
use hearth_fetch::{Catalog, CatalogEntry, Home};
use hearth_gguf::Gguf;
use hearth_model::chat::{ChatMessage, ChatTemplate};
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};

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
    /// Context window in tokens (capped at the model's trained context).
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
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
            ctx: 4096,
        }
    }
}

/// A model ready to run: weights, tokenizer, template and catalog settings.
pub struct Loaded {
    pub name: String,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub entry: Option<CatalogEntry>,
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

/// Resolves, opens and builds everything `run` and `chat` need.
pub fn load(spec: Option<&str>, gen: &GenOptions) -> anyhow::Result<(Loaded, Model)> {
    let (gguf, r) = open_gguf(spec)?;
    // The model first: an unsupported architecture or tensor type is the clearest error.
    let model =
        Model::from_gguf(gguf).with_context(|| format!("cannot load {}", r.path.display()))?;
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).context("cannot build the tokenizer")?;
    let template = match r.entry.as_ref().and_then(|e| e.template.as_deref()) {
        Some(src) => {
            let bos = tokenizer
                .bos()
                .map(|b| tokenizer.token_text(b).to_string())
                .unwrap_or_default();
            let eos = tokenizer
                .eos()
                .map(|b| tokenizer.token_text(b).to_string())
                .unwrap_or_default();
            Some(
                ChatTemplate::new(src, &bos, &eos)
                    .context("the catalog's chat template does not compile")?,
            )
        }
        None => ChatTemplate::from_gguf(md, &tokenizer)
            .context("the model's chat template does not compile")?,
    };
    let trained = model.config().ctx_train;
    if gen.ctx > trained {
        eprintln!(
            "note: context capped at {trained} tokens, the most {} was trained for",
            r.name
        );
    }
    Ok((
        Loaded {
            name: r.name,
            tokenizer,
            template,
            entry: r.entry,
        },
        model,
    ))
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

    /// Sampler settings: command-line values, else the catalog's recommendation, else defaults.
    pub fn sampler_config(&self, gen: &GenOptions) -> SamplerConfig {
        let d = self
            .entry
            .as_ref()
            .map(|e| e.defaults.clone())
            .unwrap_or_default();
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
            ..EngineOptions::default()
        },
    )
}
