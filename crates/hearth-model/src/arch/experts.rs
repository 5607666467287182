//! Mixtures of experts (Shazeer et al. 2017; Fedus et al. 2021): the router's hyper-parameters,
//! read from `{arch}.expert_*` keys and checked against the expert tensors' shapes.
//!
//! A layer's feed-forward is `n_expert` gated MLPs (`blk.N.ffn_{gate,up,down}_exps.weight`, one
//! 3-D tensor each, experts along the last dimension) and a router (`blk.N.ffn_gate_inp.weight`,
//! `(n_expert, n_embd)`). Each token goes to the `n_used` experts the router scores highest;
//! their outputs are summed, weighted by the router's probabilities. Architectures differ only
//! in how those weights are normalised and whether a shared expert runs for every token, as
//! llama.cpp's `build_moe_ffn` does for each:
//! - `qwen3moe`: softmax over all experts, top-k, the k weights divided by their sum;
//! - Mixtral (`llama` with `llama.expert_count`): the same arithmetic, which equals a softmax
//!   over the k chosen logits;
//! - `qwen2moe`: softmax over all experts, top-k, weights left as they are; plus a shared expert,
//!   a dense gated MLP scaled by `sigmoid(ffn_gate_inp_shexp · x)`.

use hearth_gguf::{Metadata, TensorInfo};

use crate::config::{agree, sane, Config, Keys};
use crate::{Error, Result};

/// The most experts a layer may have (llama.cpp's `LLAMA_MAX_EXPERTS`).
pub const MAX_EXPERTS: usize = 512;

/// A mixture-of-experts feed-forward's shape and routing rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Experts {
    /// Experts per layer.
    pub n_expert: usize,
    /// Experts each token is routed to (top-k).
    pub n_used: usize,
    /// Hidden width of one expert's MLP.
    pub n_ff: usize,
    /// Whether the k chosen weights are divided by their sum.
    pub norm_weights: bool,
    /// Hidden width of the shared expert every token also runs (Qwen2-MoE), if any.
    pub shared_ff: Option<usize>,
}

impl Experts {
    /// Weights one token reads per layer in the experts: `n_used` of `n_expert` experts (for the
    /// planner's speed estimate; memory counts all of them).
    pub fn active_fraction(&self) -> f64 {
        self.n_used as f64 / self.n_expert as f64
    }
}

/// The rule each architecture applies, where the file's `expert_weights_norm` does not say.
#[derive(Clone, Copy)]
pub(crate) struct Rule {
    pub norm_weights: bool,
    pub shared: bool,
}

/// Reads the experts of `c.arch` when the file has them: `Ok(None)` for a dense model, an error
/// naming the key or tensor when the metadata and tensors disagree.
pub(crate) fn read(
    md: &Metadata,
    c: &Config,
    tensors: &[TensorInfo],
    rule: Rule,
) -> Result<Option<Experts>> {
    let k = Keys { md, arch: &c.arch };
    let find = |name: &str| tensors.iter().find(|t| t.name == name);
    let router = "blk.0.ffn_gate_inp.weight";
    let n_expert = match k.opt_usize("expert_count")? {
        Some(n) if n > 0 => n,
        _ => {
            // A router without a count would otherwise load as a dense model and fail on a
            // missing `ffn_up.weight`, naming the wrong thing.
            let why = if find(router).is_some() {
                Some("the file has expert tensors (blk.0.ffn_gate_inp.weight), so it must say how many experts each layer has")
            } else if find("blk.0.ffn_up_exps.weight").is_some() {
                Some("the file has expert tensors (blk.0.ffn_up_exps.weight), so it must say how many experts each layer has")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::BadHyperParameter {
                    key: k.key("expert_count"),
                    value: "missing".to_string(),
                    why,
                });
            }
            return Ok(None);
        }
    };
    sane(
        n_expert <= MAX_EXPERTS,
        k.key("expert_count"),
        n_expert,
        "must be at most 512",
    )?;
    let n_used = k.opt_usize("expert_used_count")?.unwrap_or(0);
    sane(
        (1..=n_expert).contains(&n_used),
        k.key("expert_used_count"),
        n_used,
        "must be between 1 and expert_count",
    )?;
    let up_name = "blk.0.ffn_up_exps.weight";
    let up = find(up_name).ok_or_else(|| Error::MissingTensor(up_name.to_string()))?;
    let [cols, n_ff, experts] = up.dims[..] else {
        return Err(Error::BadShape {
            name: up_name.to_string(),
            expected: vec![c.n_embd as u64, 0, n_expert as u64],
            found: up.dims.clone(),
        });
    };
    let shape = || format!("{up_name} has shape {:?}", up.dims);
    agree(
        experts == n_expert as u64,
        k.key("expert_count"),
        n_expert,
        shape,
    )?;
    agree(
        cols == c.n_embd as u64,
        k.key("embedding_length"),
        c.n_embd,
        shape,
    )?;
    // A dense width is a u32 key; an expert's comes from a shape, which a header read alone
    // (a plan from a URL) never checks against real bytes, so it gets the same bound.
    sane(
        (1..=u64::from(u32::MAX)).contains(&n_ff),
        k.key("expert_feed_forward_length"),
        n_ff,
        "must be between 1 and 4294967295",
    )?;
    let n_ff = n_ff as usize;
    // Mixtral states the expert width as its feed-forward length; the Qwen MoEs have a key of
    // their own (their `feed_forward_length` is a dense layer's that they do not have).
    let (width_key, stated) = match k.opt_usize("expert_feed_forward_length")? {
        Some(v) => ("expert_feed_forward_length", Some(v)),
        None if c.arch == "llama" => ("feed_forward_length", Some(c.n_ff)),
        None => ("expert_feed_forward_length", None),
    };
    if let Some(v) = stated {
        agree(v == n_ff, k.key(width_key), v, || {
            format!("{up_name} has experts {n_ff} wide")
        })?;
    }
    let norm_weights = match md.opt_bool(&k.key("expert_weights_norm"))? {
        Some(v) => v,
        None => rule.norm_weights,
    };
    let shared_ff = if rule.shared {
        let name = "blk.0.ffn_up_shexp.weight";
        let t = find(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
        let rows = t.dims.get(1).copied().unwrap_or(0);
        if let Some(v) = k.opt_usize("expert_shared_feed_forward_length")? {
            agree(
                v as u64 == rows,
                k.key("expert_shared_feed_forward_length"),
                v,
                || format!("{name} has {rows} rows"),
            )?;
        }
        sane(
            (1..=u64::from(u32::MAX)).contains(&rows),
            k.key("expert_shared_feed_forward_length"),
            rows,
            "must be between 1 and 4294967295",
        )?;
        Some(rows as usize)
    } else {
        None
    };
    Ok(Some(Experts {
        n_expert,
        n_used,
        n_ff,
        norm_weights,
        shared_ff,
    }))
}
