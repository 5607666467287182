//! Small random-weight models, written as real GGUF files, for tests across the workspace that
//! need a model but not a real one (batching, the KV cache, the CLI's error paths).

use hearth_gguf::write::GgufWriter;
use hearth_gguf::{Array, GgmlType, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tiny mixture of experts in every layer (`qwen3moe`, `qwen2moe`, or `llama` for Mixtral).
#[derive(Clone, Debug)]
pub struct TinyExperts {
    pub n_expert: usize,
    pub n_used: usize,
    /// One expert's hidden width (Qwen2-MoE's shared expert is `n_ff` wide).
    pub n_ff: usize,
}

/// Shape and flavour of a tiny model.
#[derive(Clone, Debug)]
pub struct TinySpec {
    /// `llama`, `qwen2`, `qwen3`, `gemma3`, `qwen3moe` or `qwen2moe`.
    pub arch: &'static str,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub ctx: usize,
    /// Gemma 3's sliding window.
    pub window: usize,
    /// Weight types, used in turn for the projections (the embedding is always Q8_0).
    pub weight_types: Vec<GgmlType>,
    pub seed: u64,
    /// A chat template; with one, the file also gets a small SentencePiece vocabulary, so
    /// the tokenizer and template load from it as from a real model.
    pub chat_template: Option<String>,
    /// Metadata written last, replacing the values above: for files that lie about their
    /// shape.
    pub metadata_overrides: Vec<(String, Value)>,
    /// Experts instead of a dense feed-forward (set by default for the `*moe` architectures).
    pub experts: Option<TinyExperts>,
}

impl TinySpec {
    /// A tiny model of `arch` with every weight type of the given list in use.
    pub fn new(arch: &'static str) -> TinySpec {
        TinySpec {
            arch,
            n_layer: 6,
            n_embd: 256,
            n_head: 4,
            n_kv_head: 2,
            head_dim: 64,
            n_ff: 512,
            n_vocab: 300,
            ctx: 512,
            window: 4,
            weight_types: vec![
                GgmlType::Q8_0,
                GgmlType::Q4_0,
                GgmlType::Q4_K,
                GgmlType::Q6_K,
                GgmlType::F16,
                GgmlType::Q5_0,
            ],
            seed: 1,
            chat_template: None,
            metadata_overrides: Vec::new(),
            experts: arch.ends_with("moe").then_some(TinyExperts {
                n_expert: 8,
                n_used: 2,
                n_ff: 256,
            }),
        }
    }

    /// The GGUF file's bytes (no tokenizer: enough for [`crate::Model`]).
    pub fn build(&self) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let a = self.arch;
        let mut w = GgufWriter::new();
        let u32v = |v: usize| Value::U32(v as u32);
        w.metadata("general.architecture", Value::String(a.to_string()));
        w.metadata(&format!("{a}.block_count"), u32v(self.n_layer));
        w.metadata(&format!("{a}.embedding_length"), u32v(self.n_embd));
        w.metadata(&format!("{a}.feed_forward_length"), u32v(self.n_ff));
        w.metadata(&format!("{a}.attention.head_count"), u32v(self.n_head));
        w.metadata(
            &format!("{a}.attention.head_count_kv"),
            u32v(self.n_kv_head),
        );
        w.metadata(&format!("{a}.attention.key_length"), u32v(self.head_dim));
        w.metadata(&format!("{a}.attention.value_length"), u32v(self.head_dim));
        w.metadata(&format!("{a}.context_length"), u32v(self.ctx));
        w.metadata(
            &format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        );
        w.metadata(&format!("{a}.rope.freq_base"), Value::F32(10000.0));
        if a == "gemma3" {
            w.metadata(&format!("{a}.attention.sliding_window"), u32v(self.window));
        }
        if let Some(x) = &self.experts {
            w.metadata(&format!("{a}.expert_count"), u32v(x.n_expert));
            w.metadata(&format!("{a}.expert_used_count"), u32v(x.n_used));
            if a != "llama" {
                w.metadata(&format!("{a}.expert_feed_forward_length"), u32v(x.n_ff));
            }
        }
        let d = self.n_embd;
        let q_dim = self.n_head * self.head_dim;
        let kv_dim = self.n_kv_head * self.head_dim;
        let mut types = self.weight_types.iter().copied().cycle();
        w.tensor(
            "token_embd.weight",
            &[d as u64, self.n_vocab as u64],
            GgmlType::Q8_0,
            random_blocks(&mut rng, GgmlType::Q8_0, d * self.n_vocab),
        );
        w.tensor(
            "output_norm.weight",
            &[d as u64],
            GgmlType::F32,
            norm(&mut rng, d),
        );
        for i in 0..self.n_layer {
            // A tensor of `dims` (GGUF order), of the next type in turn unless `ty` says.
            let mut tensor =
                |w: &mut GgufWriter, name: &str, dims: &[usize], ty: Option<GgmlType>| {
                    let ty = ty.unwrap_or_else(|| types.next().unwrap_or(GgmlType::Q8_0));
                    let n = dims.iter().product();
                    let dims: Vec<u64> = dims.iter().map(|&v| v as u64).collect();
                    let data = random_blocks(&mut rng, ty, n);
                    w.tensor(&format!("blk.{i}.{name}"), &dims, ty, data);
                };
            let mut mat = |w: &mut GgufWriter, name: &str, cols: usize, rows: usize| {
                tensor(w, name, &[cols, rows], None);
            };
            mat(&mut w, "attn_q.weight", d, q_dim);
            mat(&mut w, "attn_k.weight", d, kv_dim);
            mat(&mut w, "attn_v.weight", d, kv_dim);
            mat(&mut w, "attn_output.weight", q_dim, d);
            if let Some(x) = &self.experts {
                let (e, f32) = (x.n_expert, Some(GgmlType::F32));
                tensor(&mut w, "ffn_gate_inp.weight", &[d, e], f32);
                tensor(&mut w, "ffn_gate_exps.weight", &[d, x.n_ff, e], None);
                tensor(&mut w, "ffn_up_exps.weight", &[d, x.n_ff, e], None);
                tensor(&mut w, "ffn_down_exps.weight", &[x.n_ff, d, e], None);
                if a == "qwen2moe" {
                    tensor(&mut w, "ffn_gate_inp_shexp.weight", &[d], f32);
                    tensor(&mut w, "ffn_gate_shexp.weight", &[d, self.n_ff], None);
                    tensor(&mut w, "ffn_up_shexp.weight", &[d, self.n_ff], None);
                    tensor(&mut w, "ffn_down_shexp.weight", &[self.n_ff, d], None);
                }
            } else {
                mat(&mut w, "ffn_gate.weight", d, self.n_ff);
                mat(&mut w, "ffn_up.weight", d, self.n_ff);
                mat(&mut w, "ffn_down.weight", self.n_ff, d);
            }
            let mut vecf = |w: &mut GgufWriter, name: &str, len: usize| {
                w.tensor(
                    &format!("blk.{i}.{name}"),
                    &[len as u64],
                    GgmlType::F32,
                    norm(&mut rng, len),
                );
            };
            vecf(&mut w, "attn_norm.weight", d);
            vecf(&mut w, "ffn_norm.weight", d);
            if a == "qwen2" || a == "qwen2moe" {
                vecf(&mut w, "attn_q.bias", q_dim);
                vecf(&mut w, "attn_k.bias", kv_dim);
                vecf(&mut w, "attn_v.bias", kv_dim);
            }
            if a == "qwen3" || a == "gemma3" || a == "qwen3moe" {
                vecf(&mut w, "attn_q_norm.weight", self.head_dim);
                vecf(&mut w, "attn_k_norm.weight", self.head_dim);
            }
            if a == "gemma3" {
                vecf(&mut w, "post_attention_norm.weight", d);
                vecf(&mut w, "post_ffw_norm.weight", d);
            }
        }
        if let Some(template) = &self.chat_template {
            // `<unk>`, `<s>`, `</s>`, then plain pieces: enough for a SentencePiece tokenizer.
            let tokens: Vec<String> = (0..self.n_vocab)
                .map(|i| match i {
                    0 => "<unk>".to_string(),
                    1 => "<s>".to_string(),
                    2 => "</s>".to_string(),
                    i => format!("t{i}"),
                })
                .collect();
            let types: Vec<i32> = (0..self.n_vocab)
                .map(|i| match i {
                    0 => 2,
                    1 | 2 => 3,
                    _ => 1,
                })
                .collect();
            w.metadata("tokenizer.ggml.model", Value::String("llama".into()));
            w.metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
            w.metadata(
                "tokenizer.ggml.scores",
                Value::Array(Array::F32(vec![0.0; self.n_vocab])),
            );
            w.metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
            w.metadata("tokenizer.chat_template", Value::String(template.clone()));
        }
        for (key, value) in &self.metadata_overrides {
            w.metadata(key, value.clone());
        }
        w.to_bytes()
    }
}

/// Norm-like weights around 1.
fn norm(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|_| (1.0f32 + rng.gen_range(-0.2..0.2)).to_le_bytes())
        .collect()
}

/// Random but valid blocks of `ty` for `n` elements: random bits, with every f16 scale field set
/// to a small finite value so the weights stay O(0.05).
pub fn random_blocks(rng: &mut ChaCha8Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    use GgmlType::*;
    if matches!(ty, F32 | F16 | BF16) {
        let vals: Vec<f32> = (0..n).map(|_| rng.gen_range(-0.08f32..0.08)).collect();
        let mut out = vec![0u8; hearth_kernels::row_bytes(ty, n)];
        // F32/F16/BF16 conversion cannot fail for a whole number of elements.
        hearth_kernels::quantize_row(ty, &vals, &mut out).unwrap_or_default();
        return out;
    }
    let bs = ty.type_size();
    let n_blocks = n / ty.block_size();
    let mut out = vec![0u8; n_blocks * bs];
    rng.fill(&mut out[..]);
    // (offset, scale) of each f16 field, from ggml's block layouts.
    let fields: &[(usize, f32)] = match ty {
        Q4_0 | Q5_0 | Q8_0 => &[(0, 0.01)],
        Q4_1 | Q5_1 => &[(0, 0.01), (2, 0.01)],
        Q2_K => &[(80, 0.01), (82, 0.01)],
        Q3_K => &[(108, 0.005)],
        Q4_K | Q5_K => &[(0, 0.002), (2, 0.002)],
        Q6_K => &[(208, 0.001)],
        // Levels up to 127, and IQ4_XS's group scales up to 32 times its `d`.
        IQ4_NL => &[(0, 0.0005)],
        IQ4_XS => &[(0, 0.00002)],
        // Points up to 43 (IQ2) or 62 (IQ3) times scales up to 31/8, 31/4 or 31.
        IQ2_XXS | IQ2_XS => &[(0, 0.0003)],
        IQ3_XXS => &[(0, 0.0001)],
        IQ3_S => &[(0, 0.0001)],
        MXFP4 => {
            // The E8M0 scale byte: 2^-9 .. 2^-7 times levels up to 12.
            for block in out.chunks_exact_mut(bs) {
                block[0] = rng.gen_range(119..=121);
            }
            return out;
        }
        _ => &[],
    };
    for block in out.chunks_exact_mut(bs) {
        for &(off, scale) in fields {
            let v = half::f16::from_f32(rng.gen_range(0.5f32..1.5) * scale)
                .to_bits()
                .to_le_bytes();
            block[off..off + 2].copy_from_slice(&v);
        }
    }
    out
}
