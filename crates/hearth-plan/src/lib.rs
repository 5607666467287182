//! What fits where and how fast: a memory and speed plan for a model on a machine, computed from
//! the GGUF header alone (so a model can be judged before it is downloaded).
//!
//! Everything here is a pure function of a [`Header`], a [`Machine`] and a [`Request`]; reading
//! headers belongs to `hearth-fetch`, detecting and measuring the machine to `hearth-host`, and
//! printing to the `hearth` binary.
//!
//! # The memory model
//!
//! `total = file + kv + compute + runtime`: the predicted peak resident memory (RSS) of Hearth
//! running the request with every context full, where
//! - **file** is the mapped GGUF file: the tensors' stored bytes (`weights`; the engine reads
//!   every tensor, so all of it becomes resident) and the header before them; the packed
//!   matrices move to anonymous memory at load, their file pages released, while a mixture of
//!   experts' expert tensors (`expert_bytes`) stay file pages, resident once routed to (a
//!   server's prompts reach every expert) but reclaimable by the OS;
//! - **kv** is exactly what the engine's paged cache ([`hearth_model::kv::KvCache`]) reserves:
//!   blocks of [`BLOCK_TOKENS`] positions, one group of full-attention layers holding
//!   `ceil(ctx / 16)` blocks per user, one group of sliding-window layers holding
//!   `ceil((min(window, ctx) + chunk) / 16) + 2` blocks per user, capped at `ceil(ctx / 16)`
//!   (see [`kv_bytes`]; a test builds the real cache and compares);
//! - **compute** is an estimate of the forward pass's scratch memory, see [`compute_bytes`];
//! - **runtime** is the binary itself ([`RUNTIME_BYTES`]) and the heap of the model's text
//!   tables (parsed metadata, tokenizer), estimated from the header ([`text_table_bytes`]).
//!
//! `crates/hearth/tests/plan_rss.rs` checks the total against the measured peak RSS of
//! `hearth bench --fill` on real models.
//!
//! # The speed model
//!
//! Generation is memory-bound: each step reads every weight once plus each user's KV up to the
//! context, so `tg tok/s = bandwidth × tg_efficiency / (weights + users × kv_read(ctx))` per user;
//! for a mixture of experts, `weights` are the active ones: the `expert_used_count` of
//! `expert_count` experts a token is routed to, and everything else.
//! Prompt processing is compute-bound: `pp tok/s = FLOP/s × pp_efficiency / (2 × matmul params)`.
//! The efficiencies are defaults ([`DEFAULT_TG_EFFICIENCY`], [`DEFAULT_PP_EFFICIENCY`]) until
//! `hearth plan --calibrate` measures them on the machine ([`calibrate`]).
//!
//! [`advice`] plans beyond the one machine asked about: the profiles a model fits, each GPU of
//! this machine, and `hearth plan --recommend`'s ranked list of catalog models.

pub mod advice;
pub mod calibrate;
pub mod machine;
pub mod pool;

use hearth_gguf::{GgmlType, Header};
use hearth_model::config::Config;
use hearth_model::kv::BLOCK_TOKENS;
use serde::Serialize;

pub use advice::{GpuPlan, Pick, Recommendation};
pub use calibrate::{Calibration, MachineFacts};
pub use machine::{
    parse_bytes, parse_nvidia_smi, parse_rate, DetectedGpu, Kind, Machine, Profiles,
};

/// Share of peak memory bandwidth a generation step achieves. llama.cpp-class engines read
/// weights at roughly 60–80% of the vendor figure; 0.6 is the cautious end, until calibrated.
pub const DEFAULT_TG_EFFICIENCY: f64 = 0.6;

/// Share of peak FLOP/s a prompt-processing batch achieves; matrix kernels on real shapes reach
/// about half of peak. Uncalibrated.
pub const DEFAULT_PP_EFFICIENCY: f64 = 0.5;

/// The engine's default prompt chunk (`EngineOptions::prefill_chunk`): the most tokens one
/// forward pass carries, which sizes the sliding-window KV and the compute buffers.
pub const DEFAULT_CHUNK: usize = 256;

/// The engine's default batch (`EngineOptions::max_batch_tokens`): prompt chunks of several
/// users share one forward pass up to this many tokens.
pub const DEFAULT_BATCH: usize = 512;

/// Resident memory of the running binary before any model: its code and data, the C library,
/// the allocator's arenas and the threads' stacks as far as they are touched. Measured on Linux
/// x86-64 (`hearth bench --fill` less everything a model brings); it does not depend on the
/// model.
pub const RUNTIME_BYTES: u64 = 8 << 20;

/// Stack reserved per worker thread (Rust's default for spawned threads), counted in the
/// compute buffers.
pub const THREAD_STACK_BYTES: u64 = 2 << 20;

/// llama.cpp's quantization presets, smallest last, with their average bits per weight over a
/// whole file: the sizes `llama-quantize` lists for Llama-3-8B (8.03 billion parameters), e.g.
/// Q4_K_M at 4.58 GiB = 4.90 bits. A mix such as Q4_K_M keeps some tensors at higher precision,
/// so the average is above its main type's 4.5 bits. Hearth's kernels run all of them.
pub const QUANT_PRESETS: [(&str, f64); 8] = [
    ("F16", 16.0),
    ("Q8_0", 8.52),
    ("Q6_K", 6.57),
    ("Q5_K_M", 5.70),
    ("Q4_K_M", 4.90),
    ("Q4_0", 4.64),
    ("Q3_K_M", 4.00),
    ("Q2_K", 3.17),
];

/// Weight bytes of a model of `n_params` parameters at `bits_per_weight` on average.
pub fn weights_at(n_params: u64, bits_per_weight: f64) -> u64 {
    (n_params as f64 * bits_per_weight / 8.0).ceil() as u64
}

/// Everything that can be wrong with a plan's inputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The header does not describe a model Hearth can build.
    #[error("cannot plan this model: {0}")]
    Model(#[from] hearth_model::Error),
    /// A tensor every model has is absent.
    #[error("the model has no tensor {name:?} (expected in every supported architecture)")]
    MissingTensor { name: &'static str },
    /// A tensor's size overflows.
    #[error("tensor {name:?} of {n_elements} elements of {ty} has no valid byte size")]
    TensorSize {
        name: String,
        n_elements: u64,
        ty: &'static str,
    },
    /// The tensors' sizes add up to more than a u64 counts: a header that lies.
    #[error("the model's tensors, up to {name:?}, add up to more bytes than any file holds: the header is damaged or hostile")]
    TooLarge { name: String },
    /// The machine profiles file is malformed.
    #[error("machine profiles: {0}")]
    Profiles(String),
    /// `--machine` named no known profile.
    #[error("unknown machine profile {found:?}; known profiles: {known}")]
    UnknownProfile { found: String, known: String },
    /// A size or rate such as `24GiB` or `1008GB/s` could not be read.
    #[error("cannot read {what} {found:?}: expected a number with a unit, like {example}")]
    BadQuantity {
        what: &'static str,
        found: String,
        example: &'static str,
    },
    /// A request value out of range.
    #[error("{what} must be {expected}, got {found}")]
    BadRequest {
        what: &'static str,
        expected: &'static str,
        found: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a plan needs to know about a model, read from its header.
#[derive(Clone, Debug)]
pub struct ModelFacts {
    /// The architecture's configuration, as the engine would build it.
    pub config: Config,
    /// Sum of all tensors' stored bytes.
    pub weights_bytes: u64,
    /// Parameters (elements of all tensors).
    pub n_params: u64,
    /// Parameters that take part in a matrix product per token: every tensor except the
    /// embedding table, which is a lookup, unless the output head reuses it (tied embeddings);
    /// of a mixture of experts' expert tensors, the share a token is routed to
    /// (`expert_used_count / expert_count`): the active parameters.
    pub n_matmul_params: u64,
    /// Weight bytes one generation step reads: all of them but an untied embedding table, of
    /// which a step reads one row, and but the experts a token is not routed to.
    pub read_bytes_per_token: u64,
    /// Parameters a token uses: all but the experts it is not routed to (`n_params` for a dense
    /// model).
    pub n_active_params: u64,
    /// Of `weights_bytes`, the expert tensors of a mixture of experts (`*_exps`): they stay
    /// mapped from the file, resident once read but memory the OS can reclaim, where the other
    /// matrices are packed into anonymous memory.
    pub expert_bytes: u64,
    /// Of `read_bytes_per_token`, the experts one token is routed to.
    pub active_expert_bytes: u64,
    /// Bytes of the file the engine maps: the header and the tensor data, padding included.
    /// Every page of it becomes resident (the header is parsed, every tensor is read).
    pub file_bytes: u64,
    /// Estimated heap for the model's text tables, see [`text_table_bytes`].
    pub text_bytes: u64,
}

impl ModelFacts {
    /// Reads the facts from a parsed header.
    pub fn from_header(header: &Header) -> Result<ModelFacts> {
        // Every hyper-parameter is checked against the tensors here, before any size is
        // computed from it.
        let config = hearth_model::arch::config(&header.metadata, &header.tensors)?;
        let embd = header
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .ok_or(Error::MissingTensor {
                name: "token_embd.weight",
            })?;
        let mut weights_bytes = 0u64;
        let mut n_params = 0u64;
        for t in &header.tensors {
            let n = t.n_elements();
            let bytes = t.ty.bytes_for(n).ok_or_else(|| Error::TensorSize {
                name: t.name.clone(),
                n_elements: n,
                ty: t.ty.name(),
            })?;
            // Only the first layer is checked against the hyper-parameters, so a header read
            // alone may declare more bytes than a u64 counts.
            let too_large = || Error::TooLarge {
                name: t.name.clone(),
            };
            weights_bytes = weights_bytes.checked_add(bytes).ok_or_else(too_large)?;
            n_params = n_params.checked_add(n).ok_or_else(too_large)?;
        }
        // A token reads `n_used` of each layer's `n_expert` experts: the rest of the expert
        // tensors count for memory, not for speed.
        let (mut expert_bytes, mut expert_params) = (0u64, 0u64);
        if config.experts.is_some() {
            for t in header.tensors.iter().filter(|t| t.name.contains("_exps.")) {
                // Both are at most the checked sums above.
                expert_bytes += t.ty.bytes_for(t.n_elements()).unwrap_or(0);
                expert_params += t.n_elements();
            }
        }
        let (idle_params, idle_bytes) = match &config.experts {
            Some(x) => {
                // Exact integers: an f64 of a count past 2^53 can round above it.
                let idle = |v: u64| {
                    v - (u128::from(v) * x.n_used as u128 / x.n_expert.max(1) as u128) as u64
                };
                (idle(expert_params), idle(expert_bytes))
            }
            None => (0, 0),
        };
        let tied = !header.tensors.iter().any(|t| t.name == "output.weight");
        let (n_matmul_params, read_bytes_per_token) = if tied {
            (n_params, weights_bytes)
        } else {
            // A lookup reads one row of the table: its bytes over its rows (`dims[1]`; a
            // one-dimensional table is one row).
            let rows = embd.dims.get(1).copied().unwrap_or(1).max(1);
            let embd_bytes = embd.n_bytes.min(weights_bytes);
            (
                n_params - embd.n_elements(),
                weights_bytes - embd_bytes + embd_bytes / rows,
            )
        };
        Ok(ModelFacts {
            config,
            weights_bytes,
            n_params,
            n_active_params: n_params - idle_params,
            n_matmul_params: n_matmul_params - idle_params,
            read_bytes_per_token: read_bytes_per_token - idle_bytes,
            expert_bytes,
            active_expert_bytes: expert_bytes - idle_bytes,
            file_bytes: header.file_bytes_needed(),
            text_bytes: text_table_bytes(header),
        })
    }

    /// Weight bytes one generation step reads for `users` tokens, one per user. Each token is
    /// routed on its own, so the step reads the union of their experts: for `U` tokens each
    /// picking `k` of `E` experts at random, `E·(1−(1−k/E)^U)` experts per layer are expected
    /// (each expert is missed by all with probability `(1−k/E)^U`). Real routers favour some
    /// experts, so this is an upper estimate; one user reads `read_bytes_per_token`.
    pub fn read_bytes_per_step(&self, users: usize) -> u64 {
        match &self.config.experts {
            Some(x) if users > 1 => {
                let missed = (1.0 - x.active_fraction()).powi(users.min(i32::MAX as usize) as i32);
                let union = (self.expert_bytes as f64 * (1.0 - missed)) as u64;
                let dense = self
                    .read_bytes_per_token
                    .saturating_sub(self.active_expert_bytes);
                dense.saturating_add(union.clamp(self.active_expert_bytes, self.expert_bytes))
            }
            _ => self.read_bytes_per_token,
        }
    }
}

/// Bytes glibc's allocator takes for a request of `n` bytes: an 8-byte header, rounded up to
/// 16, at least 32; nothing for an empty Rust string, which does not allocate.
fn malloc_bytes(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        (n + 8).div_ceil(16).max(2) * 16
    }
}

/// Bytes of a hashbrown table of `n` entries of `entry` bytes: a power-of-two bucket count at
/// most 7/8 full, one control byte per bucket.
fn hash_table_bytes(n: u64, entry: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let buckets = (n * 8).div_ceil(7).next_power_of_two();
    buckets * (entry + 1)
}

/// Estimated heap of the model's text tables once loaded, from the header alone:
///
/// - the parsed metadata keeps every string of every array (a 24-byte `String` plus its
///   allocation) and every number array;
/// - the tokenizer copies the vocabulary twice more (token texts and their byte pieces), keeps
///   a score and an attribute per token and an id table over the texts;
/// - a BPE tokenizer indexes its merges by token pair (16 bytes per entry).
///
/// What it leaves out (the special-token matcher, the chat template, small maps) is a few
/// hundred kilobytes for the vocabularies Hearth runs.
pub fn text_table_bytes(header: &Header) -> u64 {
    use hearth_gguf::{Array, Value};
    let strings =
        |v: &[String]| -> u64 { v.iter().map(|s| 24 + malloc_bytes(s.len() as u64)).sum() };
    let mut metadata = 0u64;
    for (_, value) in header.metadata.iter() {
        if let Value::Array(a) = value {
            metadata += match a {
                Array::String(v) => strings(v),
                // Number arrays: their element size, whatever the type.
                other => other.len() as u64 * 4,
            };
        }
    }
    let md = &header.metadata;
    let vocab = md.strings("tokenizer.ggml.tokens").unwrap_or(&[]);
    let n_vocab = vocab.len() as u64;
    let tokenizer = 2 * strings(vocab) + n_vocab * (4 + 2) + hash_table_bytes(n_vocab, 4);
    let n_merges = md
        .strings("tokenizer.ggml.merges")
        .map_or(0, |m| m.len() as u64);
    metadata + tokenizer + hash_table_bytes(n_merges, 16)
}

/// How K and V are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvType {
    /// Half precision: what the engine stores today.
    F16,
    /// 8-bit blocks of 32 with an f16 scale (34 bytes per 32 values): a planning option only,
    /// the engine does not store it yet.
    Q8_0,
}

impl KvType {
    /// Reads `f16` or `q8_0`.
    pub fn parse(s: &str) -> Result<KvType> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "q8_0" | "q8" => Ok(KvType::Q8_0),
            _ => Err(Error::BadRequest {
                what: "--kv-type",
                expected: "f16 or q8_0",
                found: s.to_string(),
            }),
        }
    }

    /// The name as flags spell it.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
        }
    }

    /// Bytes of one row of `dim` values.
    pub fn row_bytes(self, dim: usize) -> u64 {
        let ty = match self {
            KvType::F16 => GgmlType::F16,
            KvType::Q8_0 => GgmlType::Q8_0,
        };
        // A row that is not a whole number of blocks is padded to one.
        let blocks = dim.div_ceil(ty.block_size());
        (blocks * ty.type_size()) as u64
    }
}

/// Bytes of K and V for one position in every layer, before block rounding or window caps.
pub fn kv_bytes_per_token(cfg: &Config, kv: KvType) -> u64 {
    cfg.n_layer as u64 * (kv.row_bytes(cfg.kv_dim_k()) + kv.row_bytes(cfg.kv_dim_v()))
}

/// Layers in the full-attention group and in the sliding-window group.
fn layer_groups(cfg: &Config) -> (usize, usize) {
    let n_swa = cfg.layer_is_swa.iter().filter(|s| **s).count();
    (cfg.n_layer - n_swa, n_swa)
}

/// Blocks per user in the full-attention group and in the sliding-window group, as
/// `KvCache::new` reserves them.
fn blocks_per_user(cfg: &Config, ctx: usize, chunk: usize) -> (u64, u64) {
    let (n_full, n_swa) = layer_groups(cfg);
    let ctx_blocks = ctx.div_ceil(BLOCK_TOKENS);
    let full = if n_full > 0 { ctx_blocks } else { 0 };
    let swa = if n_swa > 0 {
        let window = cfg.sliding_window.unwrap_or(ctx);
        // The window, the chunk being written, and a partial block at each end.
        ((window.min(ctx) + chunk).div_ceil(BLOCK_TOKENS) + 2).min(ctx_blocks)
    } else {
        0
    };
    (full as u64, swa as u64)
}

/// Bytes the paged KV cache reserves for `users` sequences of `ctx` positions with prompt chunks
/// of `chunk` tokens: what `KvCache::new(cfg, ctx, users, chunk).capacity_bytes()` allocates
/// when `kv` is [`KvType::F16`].
pub fn kv_bytes(cfg: &Config, ctx: usize, users: usize, chunk: usize, kv: KvType) -> u64 {
    let (n_full, n_swa) = layer_groups(cfg);
    let (full_blocks, swa_blocks) = blocks_per_user(cfg, ctx, chunk);
    let row = kv.row_bytes(cfg.kv_dim_k()) + kv.row_bytes(cfg.kv_dim_v());
    let block = BLOCK_TOKENS as u64 * row;
    users as u64 * block * (n_full as u64 * full_blocks + n_swa as u64 * swa_blocks)
}

/// Bytes of KV one generation step reads for one user at position `ctx`: every position for
/// full-attention layers, the window for sliding-window layers.
pub fn kv_read_bytes(cfg: &Config, ctx: usize, kv: KvType) -> u64 {
    let (n_full, n_swa) = layer_groups(cfg);
    let row = kv.row_bytes(cfg.kv_dim_k()) + kv.row_bytes(cfg.kv_dim_v());
    let window = cfg.sliding_window.unwrap_or(ctx).min(ctx);
    row * (n_full as u64 * ctx as u64 + n_swa as u64 * window as u64)
}

/// Estimated scratch memory of the forward pass. It follows the model's `Workspace` buffer by
/// buffer, but it is an estimate, not a count of the engine's allocations:
///
/// ```text
/// tokens  = max(min(batch, users × chunk), users)   the most tokens one batch carries
/// compute = 4 × tokens × (3·n_embd + n_head·(head_dim + v_head_dim) + kv_dim_k + kv_dim_v + 2·n_ff)
///                                                   f32 activations: x, norm, residual, q, k, v,
///                                                   attention output, gate, up
///         + 4 × tokens × max(n_embd, n_ff)          a projection's input, re-encoded (f32 at most)
///         + 4 × tokens × (n_expert + n_used·(n_embd + 2) + 2·n_embd + 3·ff)
///                                                   a mixture of experts instead of gate and up
///                                                   (n_ff 0 then): router probabilities, chosen
///                                                   experts, each slot's output, an expert's
///                                                   gathered input and output, gate, up and the
///                                                   input re-encoded; ff the widest expert
///         + 4 × n_vocab × users                     logits, one row per user
///         + threads × 4 × (ctx + head_dim + v_head_dim)   one attention score row per thread
///         + threads × THREAD_STACK_BYTES            worker stacks
/// ```
pub fn compute_bytes(
    cfg: &Config,
    ctx: usize,
    users: usize,
    chunk: usize,
    batch: usize,
    threads: usize,
) -> u64 {
    // Saturating throughout: widths and counts from a hostile header, or a billion users,
    // give a number too large to fit anywhere rather than one that wraps into a small one.
    let tokens = batch.min(users.saturating_mul(chunk)).max(users) as u64;
    let w = |v: usize| v as u64;
    let (embd, ff_dense) = (w(cfg.n_embd), w(cfg.n_ff));
    // A mixture of experts has no dense feed-forward (its Workspace sizes none).
    let (n_ff, experts) = match &cfg.experts {
        Some(x) => {
            let ff = w(x.n_ff.max(x.shared_ff.unwrap_or(0)));
            let slots = w(x.n_used).saturating_mul(embd.saturating_add(2));
            (
                0,
                w(x.n_expert)
                    .saturating_add(slots)
                    .saturating_add(embd.saturating_mul(2))
                    .saturating_add(ff.saturating_mul(3)),
            )
        }
        None => (ff_dense, 0),
    };
    let per_token = [
        embd.saturating_mul(3),
        w(cfg.n_head).saturating_mul(w(cfg.head_dim).saturating_add(w(cfg.v_head_dim))),
        w(cfg.kv_dim_k()),
        w(cfg.kv_dim_v()),
        n_ff.saturating_mul(2),
        experts,
    ]
    .into_iter()
    .fold(0u64, u64::saturating_add);
    let activations = tokens.saturating_mul(4).saturating_mul(per_token);
    let encoded_input = tokens.saturating_mul(4).saturating_mul(embd.max(n_ff));
    let logits = w(cfg.n_vocab).saturating_mul(4).saturating_mul(w(users));
    let per_thread = w(ctx)
        .saturating_add(w(cfg.head_dim))
        .saturating_add(w(cfg.v_head_dim))
        .saturating_mul(4)
        .saturating_add(THREAD_STACK_BYTES);
    activations
        .saturating_add(encoded_input)
        .saturating_add(logits)
        .saturating_add(w(threads).saturating_mul(per_thread))
}

/// What the keeper asks for.
#[derive(Clone, Debug)]
pub struct Request {
    /// Context per user, in tokens.
    pub ctx: usize,
    /// Concurrent users (sequences).
    pub users: usize,
    pub kv_type: KvType,
    /// Prompt chunk of the engine ([`DEFAULT_CHUNK`]).
    pub chunk: usize,
    /// Most tokens of one forward pass ([`DEFAULT_BATCH`]).
    pub batch: usize,
    /// Worker threads of the engine's pool.
    pub threads: usize,
    /// Share of peak bandwidth achieved while generating.
    pub tg_efficiency: f64,
    /// Share of peak FLOP/s achieved while processing a prompt.
    pub pp_efficiency: f64,
    /// A draft model served beside this one (`serve --draft`): its file, KV cache (one context
    /// per user, at most its own trained context, as the engine's drafter sizes it) and scratch
    /// are counted in the total.
    pub draft: Option<std::sync::Arc<ModelFacts>>,
}

impl Request {
    /// A request with the engine's defaults for everything but context and users.
    pub fn new(ctx: usize, users: usize) -> Request {
        Request {
            ctx,
            users,
            kv_type: KvType::F16,
            chunk: DEFAULT_CHUNK,
            batch: DEFAULT_BATCH,
            threads: 1,
            tg_efficiency: DEFAULT_TG_EFFICIENCY,
            pp_efficiency: DEFAULT_PP_EFFICIENCY,
            draft: None,
        }
    }

    fn check(&self) -> Result<()> {
        let positive = |what, v: usize| {
            if v == 0 {
                Err(Error::BadRequest {
                    what,
                    expected: "at least 1",
                    found: v.to_string(),
                })
            } else {
                Ok(())
            }
        };
        positive("--ctx", self.ctx)?;
        positive("--users", self.users)?;
        positive("the prompt chunk", self.chunk)?;
        // Beyond a billion positions or users the byte counts could overflow; nobody means it.
        for (what, v) in [("--ctx", self.ctx), ("--users", self.users)] {
            if v > 1 << 30 {
                return Err(Error::BadRequest {
                    what,
                    expected: "at most 1073741824",
                    found: v.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// The answer.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub fits: bool,
    /// Usable memory minus total; negative when it does not fit.
    pub headroom_bytes: i64,
    pub usable_bytes: u64,
    pub weights_bytes: u64,
    pub kv_type: KvType,
    /// K and V of one position in every layer, before block rounding and window caps.
    pub kv_bytes_per_token: u64,
    /// What the paged cache reserves for one user at the requested context.
    pub kv_bytes_per_user: u64,
    /// What the paged cache reserves for all users.
    pub kv_bytes: u64,
    /// Estimated scratch memory, see [`compute_bytes`].
    pub compute_bytes: u64,
    /// The file's header and padding, mapped with the weights.
    pub header_bytes: u64,
    /// The binary itself ([`RUNTIME_BYTES`]) and the model's text tables
    /// ([`text_table_bytes`]).
    pub runtime_bytes: u64,
    /// A draft model's file, KV cache and scratch ([`Request::draft`]); 0 without one.
    pub draft_bytes: u64,
    /// Everything: the predicted peak resident memory of Hearth running this request with every
    /// context full.
    pub total_bytes: u64,
    pub ctx: usize,
    pub users: usize,
    /// The model's training context.
    pub ctx_train: usize,
    /// Longest context per user (a multiple of 16, at most the training context or as far as
    /// the file's RoPE scaling reaches, `Config::max_ctx`) that fits for
    /// the requested users; 0 when not even 16 positions do.
    pub max_ctx_per_user: usize,
    /// Most users that fit at the requested context; 0 when not even one does.
    pub max_users_at_ctx: usize,
    /// Estimated generation speed per user, all users generating, at a full context.
    pub est_tg_tok_s: f64,
    /// Estimated prompt processing speed.
    pub est_pp_tok_s: f64,
    /// Whether the speeds are for a GPU engine Hearth does not have yet.
    pub speed_is_gpu_estimate: bool,
    /// What would fit, when this does not.
    pub advice: Vec<String>,
}

/// Memory that does not grow with context or users: the mapped file and the runtime.
fn fixed_bytes(facts: &ModelFacts) -> u64 {
    facts
        .file_bytes
        .max(facts.weights_bytes)
        .saturating_add(RUNTIME_BYTES + facts.text_bytes)
}

/// Total bytes of a configuration.
fn total(facts: &ModelFacts, req: &Request, ctx: usize, users: usize) -> u64 {
    let cfg = &facts.config;
    fixed_bytes(facts)
        .saturating_add(kv_bytes(cfg, ctx, users, req.chunk, req.kv_type))
        .saturating_add(compute_bytes(
            cfg,
            ctx,
            users,
            req.chunk,
            req.batch,
            req.threads,
        ))
        .saturating_add(
            req.draft
                .as_ref()
                .map_or(0, |d| draft_bytes(d, req, ctx, users)),
        )
}

/// What a draft model adds beside the served one: everything but the binary, which is counted
/// once.
fn draft_bytes(draft: &ModelFacts, req: &Request, ctx: usize, users: usize) -> u64 {
    let cfg = &draft.config;
    let ctx = ctx.min(cfg.max_ctx().max(1));
    (fixed_bytes(draft) - RUNTIME_BYTES)
        .saturating_add(kv_bytes(cfg, ctx, users, req.chunk, req.kv_type))
        .saturating_add(compute_bytes(
            cfg,
            ctx,
            users,
            req.chunk,
            req.batch,
            req.threads,
        ))
}

/// The largest `x` in `1..=hi` with `ok(x)`, or 0; `ok` must be monotone (true then false).
fn largest(hi: usize, ok: impl Fn(usize) -> bool) -> usize {
    if hi == 0 || !ok(1) {
        return 0;
    }
    let (mut lo, mut hi) = (1, hi);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// A size for people: GiB from 1 GiB up, MiB below.
fn gib(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

/// The largest preset of [`QUANT_PRESETS`] below the model's own average bits per weight with
/// which the request fits as asked, as advice; the weights are estimated from the parameter
/// count, the rest of the memory is unchanged.
fn smaller_quantization(facts: &ModelFacts, req: &Request, usable: u64) -> Option<String> {
    let own_bits = facts.weights_bytes as f64 * 8.0 / facts.n_params.max(1) as f64;
    let rest = total(facts, req, req.ctx, req.users) - facts.weights_bytes.min(facts.file_bytes);
    let (name, bits) = QUANT_PRESETS
        .iter()
        // Below the model's own bits by a margin, so the same preset is not offered back.
        .filter(|(_, bits)| *bits < own_bits * 0.95)
        .find(|(_, bits)| weights_at(facts.n_params, *bits) + rest <= usable)?;
    Some(format!(
        "a smaller quantization of the same model fits: {name} (about {} of weights, estimated \
         from {:.0}M parameters × {bits} bits; this file averages {own_bits:.2} bits)",
        gib(weights_at(facts.n_params, *bits)),
        facts.n_params as f64 / 1e6
    ))
}

/// Plans `facts` on `machine` for `req`.
pub fn plan(facts: &ModelFacts, machine: &Machine, req: &Request) -> Result<Plan> {
    req.check()?;
    let cfg = &facts.config;
    let usable = machine.usable_bytes();
    let weights = facts.weights_bytes;
    let kv = kv_bytes(cfg, req.ctx, req.users, req.chunk, req.kv_type);
    let compute = compute_bytes(cfg, req.ctx, req.users, req.chunk, req.batch, req.threads);
    let total_bytes = total(facts, req, req.ctx, req.users);
    let fits = total_bytes <= usable;
    let fits_with = |ctx: usize, users: usize| total(facts, req, ctx, users) <= usable;
    // As far as the file's RoPE scaling reaches, else the training context.
    let ctx_cap = cfg.max_ctx().max(BLOCK_TOKENS);
    let max_ctx_per_user = largest(ctx_cap / BLOCK_TOKENS, |b| {
        fits_with(b * BLOCK_TOKENS, req.users)
    }) * BLOCK_TOKENS;
    let max_users_at_ctx = largest(1 << 20, |u| fits_with(req.ctx, u));

    let read = facts.read_bytes_per_step(req.users).saturating_add(
        (req.users as u64).saturating_mul(kv_read_bytes(cfg, req.ctx, req.kv_type)),
    );
    let est_tg_tok_s = machine.bandwidth_bytes_per_s * req.tg_efficiency / read as f64;
    let est_pp_tok_s =
        machine.flops_per_s * req.pp_efficiency / (2.0 * facts.n_matmul_params.max(1) as f64);

    let draft = req
        .draft
        .as_ref()
        .map_or(0, |d| draft_bytes(d, req, req.ctx, req.users));
    let mut advice = Vec::new();
    if !fits && draft > 0 && total_bytes - draft <= usable {
        advice.push(format!(
            "it fits without the draft model, which needs {} of it",
            gib(draft)
        ));
    }
    if !fits {
        if let Some(a) = smaller_quantization(facts, req, usable) {
            advice.push(a);
        }
        let smallest = total(facts, req, BLOCK_TOKENS, 1);
        if smallest > usable {
            advice.push(format!(
                "not even {BLOCK_TOKENS} tokens for one user fit ({} needed, {} of it weights, {} \
                 usable): take a smaller quantization or model, or a machine with more memory",
                gib(smallest),
                gib(weights),
                gib(usable)
            ));
        } else {
            if max_ctx_per_user > 0 {
                advice.push(format!(
                    "a shorter context fits: --ctx {max_ctx_per_user} for {} user(s)",
                    req.users
                ));
            }
            if max_users_at_ctx > 0 && max_users_at_ctx < req.users {
                advice.push(format!(
                    "fewer users fit: --users {max_users_at_ctx} at --ctx {}",
                    req.ctx
                ));
            }
            if req.kv_type == KvType::F16 {
                let q8 = Request {
                    kv_type: KvType::Q8_0,
                    ..req.clone()
                };
                if total(facts, &q8, req.ctx, req.users) <= usable {
                    advice.push(
                        "KV in q8_0 fits (--kv-type q8_0); note the engine stores KV as f16 today, \
                         so this is a plan for a later engine"
                            .to_string(),
                    );
                }
            }
        }
    }
    Ok(Plan {
        fits,
        headroom_bytes: (i128::from(usable) - i128::from(total_bytes))
            .clamp(i64::MIN.into(), i64::MAX.into()) as i64,
        usable_bytes: usable,
        weights_bytes: weights,
        kv_type: req.kv_type,
        kv_bytes_per_token: kv_bytes_per_token(cfg, req.kv_type),
        kv_bytes_per_user: kv_bytes(cfg, req.ctx, 1, req.chunk, req.kv_type),
        kv_bytes: kv,
        compute_bytes: compute,
        header_bytes: facts.file_bytes.saturating_sub(weights),
        runtime_bytes: RUNTIME_BYTES + facts.text_bytes,
        draft_bytes: draft,
        total_bytes,
        ctx: req.ctx,
        users: req.users,
        ctx_train: cfg.ctx_train,
        max_ctx_per_user,
        max_users_at_ctx,
        est_tg_tok_s,
        est_pp_tok_s,
        speed_is_gpu_estimate: machine.kind == Kind::Gpu,
        advice,
    })
}
