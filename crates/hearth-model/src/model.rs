//! The pre-norm decoder every supported architecture is an instance of, and its batched forward
//! pass.
//!
//! One call of [`Model::forward`] processes a batch of tokens from several sequences, each with
//! its own position and KV cache — prompt chunks and single decode tokens mixed. Weights stay
//! quantized: the matrices with packed kernels are re-laid once at load into groups of eight
//! interleaved rows in one anonymous arena (the same number of bytes; the file's pages are
//! released behind each slice); the rest stay in the memory-mapped file; the small norm vectors
//! and biases are copied.
//!
//! # Batch invariance
//! For every output element the floating-point operations are the same whatever the batch size,
//! a token's place in the batch, the prompt-chunk boundaries and the thread count: norms, RoPE
//! and activation quantization are per token; every projection goes through
//! `hearth_kernels::matmul`, whose elements each depend only on one weight row and one
//! activation row (a `vec_dot`, or the packed reference on packed matrices); threads split output
//! rows or (token, head) pairs, never a reduction; K and V are written to the cache (as f16)
//! before any query of the batch reads them, and attention walks positions in order.

use std::path::Path;
use std::sync::Mutex;

use half::f16;
use hearth_gguf::{GgmlType, Gguf, TensorInfo};
use hearth_kernels::{activation_type, matmul, QMatrix, ThreadPool};

use crate::config::{Activation, Config};
use crate::kv::{KvCache, SeqKv};
use crate::ops::{self, Rope};
use crate::{arch, Error, Result};

/// A weight matrix: `rows` rows of `cols` elements, row-major in the mapped file, or packed
/// (`hearth_kernels::packed`) at `packed` in the model's packed arena.
#[derive(Clone, Debug)]
struct Weight {
    index: usize,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    packed: Option<std::ops::Range<usize>>,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    wq: Weight,
    wk: Weight,
    wv: Weight,
    wo: Weight,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    attn_post_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: Weight,
    up: Weight,
    down: Weight,
    ffn_post_norm: Option<Vec<f32>>,
}

/// A loaded model: configuration plus weights mapped from its GGUF file.
pub struct Model {
    gguf: Gguf,
    /// The packed weights (anonymous memory; empty when nothing is packed).
    arena: Option<memmap2::MmapMut>,
    config: Config,
    tok_embd: Weight,
    output: Weight,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    rope_full: Rope,
    rope_swa: Rope,
    /// Reference mode: f32 weights and activations, no activation quantization (see
    /// [`Model::set_exact`]).
    exact: bool,
}

/// One token of a batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem {
    pub token: u32,
    /// Position in its sequence.
    pub pos: usize,
    /// Index into the `seqs` slice given to [`Model::forward`].
    pub seq: usize,
    /// Whether logits are wanted for this token.
    pub logits: bool,
}

impl Model {
    /// Maps `path` and builds the model it describes.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::from_gguf(Gguf::open(path)?)
    }

    /// Builds the model described by an opened GGUF file, packing its matrices (see
    /// `pack_weights`).
    pub fn from_gguf(gguf: Gguf) -> Result<Model> {
        let md = gguf.metadata();
        let config = arch::config(md, gguf.tensors())?;
        let n_vocab = config.n_vocab;
        let c = &config;
        let mut tok_embd = weight(&gguf, "token_embd.weight", c.n_embd, n_vocab)?;
        let mut output = match gguf.tensor("output.weight") {
            Some(_) => weight(&gguf, "output.weight", c.n_embd, n_vocab)?,
            None => tok_embd.clone(),
        };
        let output_norm = vector(&gguf, "output_norm.weight", c.n_embd)?;
        let q_dim = c.n_head * c.head_dim;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let opt_vec = |name: &str, len: usize, on: bool| -> Result<Option<Vec<f32>>> {
                if on {
                    vector(&gguf, &n(name), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: vector(&gguf, &n("attn_norm.weight"), c.n_embd)?,
                wq: weight(&gguf, &n("attn_q.weight"), c.n_embd, q_dim)?,
                wk: weight(&gguf, &n("attn_k.weight"), c.n_embd, c.kv_dim_k())?,
                wv: weight(&gguf, &n("attn_v.weight"), c.n_embd, c.kv_dim_v())?,
                wo: weight(
                    &gguf,
                    &n("attn_output.weight"),
                    c.n_head * c.v_head_dim,
                    c.n_embd,
                )?,
                bq: opt_vec("attn_q.bias", q_dim, c.qkv_bias)?,
                bk: opt_vec("attn_k.bias", c.kv_dim_k(), c.qkv_bias)?,
                bv: opt_vec("attn_v.bias", c.kv_dim_v(), c.qkv_bias)?,
                q_norm: opt_vec("attn_q_norm.weight", c.head_dim, c.qk_norm)?,
                k_norm: opt_vec("attn_k_norm.weight", c.head_dim, c.qk_norm)?,
                attn_post_norm: opt_vec("post_attention_norm.weight", c.n_embd, c.post_norms)?,
                ffn_norm: vector(&gguf, &n("ffn_norm.weight"), c.n_embd)?,
                gate: weight(&gguf, &n("ffn_gate.weight"), c.n_embd, c.n_ff)?,
                up: weight(&gguf, &n("ffn_up.weight"), c.n_embd, c.n_ff)?,
                down: weight(&gguf, &n("ffn_down.weight"), c.n_ff, c.n_embd)?,
                ffn_post_norm: opt_vec("post_ffw_norm.weight", c.n_embd, c.post_norms)?,
            });
        }
        let tied = output.index == tok_embd.index;
        let mut model_weights: Vec<&mut Weight> = Vec::new();
        for l in &mut layers {
            let Layer {
                wq,
                wk,
                wv,
                wo,
                gate,
                up,
                down,
                ..
            } = l;
            model_weights.extend([wq, wk, wv, wo, gate, up, down]);
        }
        // An untied embedding table is only looked up row by row, so it stays row-major;
        // a tied one is also the output projection and is packed with it.
        model_weights.push(&mut output);
        let arena = if packing_enabled() {
            pack_weights(&gguf, &mut model_weights)?
        } else {
            None
        };
        if tied {
            tok_embd.packed = output.packed.clone();
        }
        let c = &config;
        let rope_full = Rope::new(c.rope_style, c.rope_dim, c.rope_base, c.rope_scale);
        let rope_swa = Rope::new(c.rope_style, c.rope_dim, c.rope_base_swa, 1.0);
        Ok(Model {
            gguf,
            arena,
            config,
            tok_embd,
            output,
            output_norm,
            layers,
            rope_full,
            rope_swa,
            exact: false,
        })
    }

    /// Switches the reference mode on or off. In it every projection dequantizes its weight rows
    /// to f32 and multiplies them with unquantized f32 activations: slow, but free of the
    /// activation quantization whose rounding makes small models' logits jump by tenths, so
    /// tests can check the network itself tightly against an independent float64
    /// implementation. Off by default.
    pub fn set_exact(&mut self, exact: bool) {
        self.exact = exact;
    }

    /// The network's hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The underlying file (metadata for the tokenizer and template).
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    fn mat(&self, w: &Weight) -> QMatrix<'_> {
        let (data, packed) = match (&w.packed, &self.arena) {
            (Some(range), Some(arena)) => (&arena[range.clone()], true),
            _ => (self.gguf.tensor_data(&self.gguf.tensors()[w.index]), false),
        };
        QMatrix {
            ty: w.ty,
            data,
            rows: w.rows,
            cols: w.cols,
            packed,
        }
    }

    /// Runs one batch through the network and returns the logits of the items that asked for
    /// them, `n_vocab` floats each, in batch order.
    ///
    /// `seqs` is anything that lends each sequence's KV view (`&[&SeqKv]`, or the engine's own
    /// sequences, so no list has to be built per step). Every `seqs[item.seq]` must have
    /// reserved room for `item.pos` ([`KvCache::reserve`]);
    /// the caller advances each sequence's length afterwards.
    pub fn forward<'w, S: AsRef<SeqKv> + Sync>(
        &self,
        batch: &[BatchItem],
        seqs: &[S],
        kv: &mut KvCache,
        ws: &'w mut Workspace,
        pool: &ThreadPool,
    ) -> Result<&'w [f32]> {
        let c = &self.config;
        let n_tok = batch.len();
        for item in batch {
            if item.token as usize >= c.n_vocab {
                return Err(Error::BadToken {
                    id: item.token,
                    n_vocab: c.n_vocab,
                });
            }
            let seq = seqs[item.seq].as_ref();
            if item.pos >= seq.capacity() {
                return Err(Error::PositionOutOfRange {
                    pos: item.pos,
                    capacity: seq.capacity(),
                });
            }
        }
        ws.prepare(c, n_tok, pool.n_threads());
        let d = c.n_embd;
        let q_dim = c.n_head * c.head_dim;
        let kd = c.kv_dim_k();
        let vd = c.kv_dim_v();

        // Embeddings: one row of the (quantized) table per token.
        let emb = self.mat(&self.tok_embd);
        for (t, item) in batch.iter().enumerate() {
            let x = &mut ws.x[t * d..(t + 1) * d];
            emb.dequantize_row(item.token as usize, &mut ws.row_bytes, x)?;
            if c.embd_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= c.embd_scale);
            }
        }

        for (il, layer) in self.layers.iter().enumerate() {
            // --- attention ---
            for t in 0..n_tok {
                ops::rms_norm(
                    &ws.x[t * d..(t + 1) * d],
                    &layer.attn_norm,
                    c.rms_eps,
                    &mut ws.xn[t * d..(t + 1) * d],
                );
            }
            ws.act.invalidate();
            self.project(pool, &layer.wq, &mut ws.act, &ws.xn, n_tok, &mut ws.q)?; // (T, n_head * head_dim)
            self.project(pool, &layer.wk, &mut ws.act, &ws.xn, n_tok, &mut ws.k)?; // (T, n_kv_head * head_dim)
            self.project(pool, &layer.wv, &mut ws.act, &ws.xn, n_tok, &mut ws.v)?; // (T, n_kv_head * v_head_dim)
            let is_swa = c.layer_is_swa[il];
            let rope = if is_swa {
                &self.rope_swa
            } else {
                &self.rope_full
            };
            for (t, item) in batch.iter().enumerate() {
                let q = &mut ws.q[t * q_dim..(t + 1) * q_dim];
                let k = &mut ws.k[t * kd..(t + 1) * kd];
                let v = &mut ws.v[t * vd..(t + 1) * vd];
                if let (Some(bq), Some(bk), Some(bv)) = (&layer.bq, &layer.bk, &layer.bv) {
                    add(q, bq);
                    add(k, bk);
                    add(v, bv);
                }
                if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                    q.chunks_exact_mut(c.head_dim)
                        .for_each(|h| ops::rms_norm_inplace(h, qn, c.rms_eps));
                    k.chunks_exact_mut(c.head_dim)
                        .for_each(|h| ops::rms_norm_inplace(h, kn, c.rms_eps));
                }
                rope.apply(q, c.head_dim, item.pos);
                rope.apply(k, c.head_dim, item.pos);
                if c.q_scale != 1.0 {
                    q.iter_mut().for_each(|x| *x *= c.q_scale);
                }
                // Keys and values reach the cache before any query of this batch reads it.
                kv.write(il, seqs[item.seq].as_ref(), item.pos, k, v)?;
            }
            self.attention(il, batch, seqs, kv, ws, pool);
            ws.act.invalidate();
            self.project(pool, &layer.wo, &mut ws.act, &ws.attn, n_tok, &mut ws.tmp)?; // (T, d)
            for t in 0..n_tok {
                let out = &mut ws.tmp[t * d..(t + 1) * d];
                if let Some(w) = &layer.attn_post_norm {
                    ops::rms_norm_inplace(out, w, c.rms_eps);
                }
                add(&mut ws.x[t * d..(t + 1) * d], out);
            }

            // --- feed-forward ---
            for t in 0..n_tok {
                ops::rms_norm(
                    &ws.x[t * d..(t + 1) * d],
                    &layer.ffn_norm,
                    c.rms_eps,
                    &mut ws.xn[t * d..(t + 1) * d],
                );
            }
            ws.act.invalidate();
            self.project(pool, &layer.gate, &mut ws.act, &ws.xn, n_tok, &mut ws.gate)?; // (T, n_ff)
            self.project(pool, &layer.up, &mut ws.act, &ws.xn, n_tok, &mut ws.up)?; // (T, n_ff)
            let n_ff = c.n_ff;
            for t in 0..n_tok {
                let g = &mut ws.gate[t * n_ff..(t + 1) * n_ff];
                let u = &ws.up[t * n_ff..(t + 1) * n_ff];
                match c.activation {
                    Activation::Silu => ops::swiglu(g, u),
                    Activation::GeluTanh => ops::geglu(g, u),
                }
            }
            ws.act.invalidate();
            self.project(pool, &layer.down, &mut ws.act, &ws.gate, n_tok, &mut ws.tmp)?; // (T, d)
            for t in 0..n_tok {
                let out = &mut ws.tmp[t * d..(t + 1) * d];
                if let Some(w) = &layer.ffn_post_norm {
                    ops::rms_norm_inplace(out, w, c.rms_eps);
                }
                add(&mut ws.x[t * d..(t + 1) * d], out);
            }
        }

        // --- output: final norm and logits for the tokens that want them ---
        let mut n_out = 0;
        for (t, item) in batch.iter().enumerate() {
            if item.logits {
                let (src, dst) = (t * d, n_out * d);
                ops::rms_norm(
                    &ws.x[src..src + d],
                    &self.output_norm,
                    c.rms_eps,
                    &mut ws.xn[dst..dst + d],
                );
                n_out += 1;
            }
        }
        ws.logits.resize(n_out * c.n_vocab, 0.0);
        if n_out > 0 {
            ws.act.invalidate();
            let out = &mut ws.logits[..n_out * c.n_vocab];
            self.project(pool, &self.output, &mut ws.act, &ws.xn, n_out, out)?;
            if let Some(cap) = c.final_logit_softcap {
                out.iter_mut().for_each(|v| *v = (*v / cap).tanh() * cap);
            }
        }
        Ok(&ws.logits[..n_out * c.n_vocab])
    }

    /// `out = x · wᵀ` for `n_tok` rows of `x`, quantizing `x` to the weight's activation type
    /// unless `act` already holds it in that type.
    fn project(
        &self,
        pool: &ThreadPool,
        w: &Weight,
        act: &mut ActCache,
        x: &[f32],
        n_tok: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let m = self.mat(w);
        if self.exact {
            return project_exact(
                pool,
                &m,
                &x[..n_tok * m.cols],
                n_tok,
                &mut out[..n_tok * m.rows],
            );
        }
        let aty = activation_type(m.ty)?;
        if act.ty != Some(aty) {
            hearth_kernels::matmul::quantize_activations(
                aty,
                &x[..n_tok * m.cols],
                m.cols,
                &mut act.buf,
            )?;
            act.ty = Some(aty);
        }
        matmul(pool, &m, &act.buf, n_tok, &mut out[..n_tok * m.rows]);
        Ok(())
    }

    /// Causal (and, on local layers, windowed) attention for every (token, head) pair of the
    /// batch, split across threads; each pair reads its sequence's keys in position order.
    /// Causal attention for every token of the batch, all heads.
    ///
    /// Work is split into units of (run, head): a run is up to [`ATTN_RUN`] consecutive batch
    /// tokens of one sequence at consecutive positions (a prompt chunk; a decoding sequence is
    /// a run of one). A unit widens each key and value row to f32 once and uses it for all of
    /// the run's tokens that see it, instead of once per token. Units go to threads in
    /// contiguous ranges of about equal cost (keys seen), because causal attention gives later
    /// tokens more work than earlier ones.
    ///
    /// Every token's arithmetic is the one-token arithmetic, in the same order: each score is
    /// the F32 dot of the widened key and the query rounded to f16 (the same operations as the
    /// F16 dot of the f16 values, since widening is exact), softmax walks the keys in order, and
    /// the output sums `p · v` over the keys in order. So results do not depend on the batch.
    fn attention<S: AsRef<SeqKv> + Sync>(
        &self,
        il: usize,
        batch: &[BatchItem],
        seqs: &[S],
        kv: &KvCache,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) {
        let c = &self.config;
        let group = c.n_head / c.n_kv_head;
        let hd = c.head_dim;
        let vhd = c.v_head_dim;
        let q_dim = c.n_head * hd;
        let window = kv.window(il);
        // The first position token `item` attends to.
        let first_of = |item: &BatchItem| {
            let view = kv.view(il, seqs[item.seq].as_ref());
            match window {
                Some(w) => (item.pos + 1).saturating_sub(w),
                None => 0,
            }
            .max(view.first_pos())
        };

        // Runs, then units (run-major, head-minor) and their split between threads.
        ws.runs.clear();
        let mut i = 0;
        while i < batch.len() {
            let mut len = 1;
            while len < ATTN_RUN
                && i + len < batch.len()
                && batch[i + len].seq == batch[i].seq
                && batch[i + len].pos == batch[i + len - 1].pos + 1
            {
                len += 1;
            }
            let cost: usize = batch[i..i + len]
                .iter()
                .map(|it| it.pos + 1 - first_of(it))
                .sum();
            ws.runs.push(Run {
                start: i,
                len,
                cost,
            });
            i += len;
        }
        let nt = pool.n_threads();
        let total: usize = ws.runs.iter().map(|r| r.cost).sum::<usize>() * c.n_head;
        ws.unit_bounds.clear();
        ws.unit_bounds.push(0);
        let mut acc = 0usize;
        let mut unit = 0usize;
        for r in ws.runs.iter() {
            for _ in 0..c.n_head {
                acc += r.cost;
                unit += 1;
                // Thread k's range ends at the first unit where the running cost reaches
                // k / nt of the total.
                while ws.unit_bounds.len() < nt && acc * nt >= total * ws.unit_bounds.len() {
                    ws.unit_bounds.push(unit);
                }
            }
        }
        while ws.unit_bounds.len() <= nt {
            ws.unit_bounds.push(unit);
        }

        let q = &ws.q;
        let scratch = &ws.attn_scratch;
        let runs = &ws.runs;
        let bounds = &ws.unit_bounds;
        let exact = self.exact;
        pool.run(|ti, _| {
            // Each thread has its own scratch; the lock is never contended.
            let mut guard = scratch[ti].lock().unwrap_or_else(|e| e.into_inner());
            let s = &mut *guard;
            s.out.clear();
            for u in bounds[ti]..bounds[ti + 1] {
                let (run, h) = (&runs[u / c.n_head], u % c.n_head);
                let g = h / group;
                let items = &batch[run.start..run.start + run.len];
                let view = kv.view(il, seqs[items[0].seq].as_ref());
                // Queries meet f16 keys as f16, as in llama.cpp: rounded to f16 here.
                s.qf.clear();
                for t in run.start..run.start + run.len {
                    let qh = &q[t * q_dim + h * hd..t * q_dim + (h + 1) * hd];
                    s.qf.extend_from_slice(qh);
                }
                hearth_kernels::round_to_f16(&mut s.qf);
                s.firsts.clear();
                s.firsts.extend(items.iter().map(first_of));
                let lo = s.firsts.iter().copied().min().unwrap_or(0);
                let hi = items[run.len - 1].pos;
                let span = hi + 1 - lo;
                // Scores key-major, `[position - lo][token]`: the tokens that see key `j`
                // are a contiguous range (causal on the right, the window on the left).
                let len = run.len;
                let pos0 = items[0].pos;
                let firsts = &s.firsts;
                let seen_by =
                    |j: usize| (j.saturating_sub(pos0), firsts.partition_point(|&f| f <= j));
                s.scores.clear();
                s.scores.resize(len * span, 0.0);
                if len == 1 {
                    // One token (decoding): each key is used once, so the F16 dot reads it
                    // as stored rather than widening it first (the same operations on the
                    // same values, so the same bits).
                    s.q16.clear();
                    s.q16
                        .extend(s.qf.iter().map(|&x| f16::from_f32(x).to_bits()));
                    let qb: &[u8] = bytemuck::cast_slice(&s.q16);
                    for j in s.firsts[0]..=hi {
                        let k: &[u8] = bytemuck::cast_slice(&view.k(j)[g * hd..(g + 1) * hd]);
                        s.scores[j - lo] = hearth_kernels::vec_dot(GgmlType::F16, hd, k, qb);
                    }
                }
                s.krow.resize(hd, 0.0);
                for j in lo..=hi {
                    let (r0, r1) = seen_by(j);
                    if r0 >= r1 || len == 1 {
                        continue;
                    }
                    let k: &[u8] = bytemuck::cast_slice(&view.k(j)[g * hd..(g + 1) * hd]);
                    // A whole row of f16 values always decodes; the length is the row's own.
                    let _ = hearth_kernels::dequantize_row(GgmlType::F16, k, &mut s.krow);
                    let at = (j - lo) * len;
                    hearth_kernels::dot_f32_rows(
                        hd,
                        &s.krow,
                        &s.qf[r0 * hd..r1 * hd],
                        &mut s.scores[at + r0..at + r1],
                    );
                }
                // Softmax per token over the keys it sees, walked key by key so each step
                // touches the run's tokens side by side. Every token still takes its own keys
                // in order (scale and max, then exp and a running sum, then the probabilities),
                // so its numbers are the one-token ones. Probabilities are rounded to f16 as
                // llama.cpp multiplies V by them (not in exact mode).
                s.maxs.clear();
                s.maxs.resize(len, f32::NEG_INFINITY);
                s.sums.clear();
                s.sums.resize(len, 0.0);
                for j in lo..=hi {
                    let (r0, r1) = seen_by(j);
                    if r0 >= r1 {
                        continue;
                    }
                    let at = (j - lo) * len;
                    for (sc, m) in s.scores[at + r0..at + r1]
                        .iter_mut()
                        .zip(&mut s.maxs[r0..r1])
                    {
                        *sc *= c.attn_scale;
                        *m = m.max(*sc);
                    }
                }
                // The exponential is `hearth_kernels::exp_f32`, the same bits whether it runs
                // on a key's tokens side by side or (decoding) on one token's keys.
                if len == 1 {
                    let row = &mut s.scores[s.firsts[0] - lo..=hi - lo];
                    hearth_kernels::exp_sub(row, s.maxs[0]);
                    for &e in row.iter() {
                        s.sums[0] += e;
                    }
                } else {
                    for j in lo..=hi {
                        let (r0, r1) = seen_by(j);
                        if r0 >= r1 {
                            continue;
                        }
                        let at = (j - lo) * len;
                        hearth_kernels::exp_sub_rows(
                            &mut s.scores[at + r0..at + r1],
                            &s.maxs[r0..r1],
                            &mut s.sums[r0..r1],
                        );
                    }
                }
                for sum in s.sums.iter_mut() {
                    *sum = 1.0 / *sum;
                }
                for j in lo..=hi {
                    let (r0, r1) = seen_by(j);
                    if r0 >= r1 {
                        continue;
                    }
                    let at = (j - lo) * len;
                    let ps = &mut s.scores[at + r0..at + r1];
                    for (p, inv) in ps.iter_mut().zip(&s.sums[r0..r1]) {
                        *p *= inv;
                    }
                    if !exact {
                        hearth_kernels::round_to_f16(ps);
                    }
                }
                // Values, a chunk of keys at a time (widened once, kept in L1): each token adds
                // the keys it sees of the chunk with its output row held in registers
                // (`axpy_keys`). Every output element still receives `p·v` key by key in
                // position order, the one-token operations.
                let o0 = s.out.len();
                s.out.resize(o0 + len * vhd, 0.0);
                let chunk = (4096 / vhd.max(1)).max(8);
                let mut c0 = lo;
                while c0 <= hi {
                    let c1 = (c0 + chunk).min(hi + 1);
                    s.vrows.resize((c1 - c0) * vhd, 0.0);
                    for j in c0..c1 {
                        let v: &[u8] = bytemuck::cast_slice(&view.v(j)[g * vhd..(g + 1) * vhd]);
                        let dst = &mut s.vrows[(j - c0) * vhd..(j - c0 + 1) * vhd];
                        // A whole row of f16 values always decodes.
                        let _ = hearth_kernels::dequantize_row(GgmlType::F16, v, dst);
                    }
                    for (r, item) in items.iter().enumerate() {
                        let (a, b) = (s.firsts[r].max(c0), (item.pos + 1).min(c1));
                        if a >= b {
                            continue;
                        }
                        hearth_kernels::axpy_keys(
                            &s.vrows[(a - c0) * vhd..(b - c0) * vhd],
                            &s.scores[(a - lo) * len + r..],
                            len,
                            &mut s.out[o0 + r * vhd..o0 + (r + 1) * vhd],
                        );
                    }
                    c0 = c1;
                }
            }
        });
        // Put each unit's rows where they belong: token t, head h at (t * n_head + h) * vhd.
        for ti in 0..nt {
            let guard = ws.attn_scratch[ti]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut at = 0;
            for u in ws.unit_bounds[ti]..ws.unit_bounds[ti + 1] {
                let (run, h) = (&ws.runs[u / c.n_head], u % c.n_head);
                for r in 0..run.len {
                    let t = run.start + r;
                    let dst = (t * c.n_head + h) * vhd;
                    ws.attn[dst..dst + vhd].copy_from_slice(&guard.out[at..at + vhd]);
                    at += vhd;
                }
            }
        }
    }
}

/// Most tokens of one sequence whose attention one work unit computes together.
const ATTN_RUN: usize = 16;

/// Consecutive batch tokens of one sequence (see [`Model::attention`]).
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    /// Index of its first token in the batch.
    start: usize,
    len: usize,
    /// Keys seen by its tokens together (per head).
    cost: usize,
}

/// Quantized activations of the last projection input, reused while the input is unchanged
/// (Q, K and V share one quantization; so do gate and up).
#[derive(Default)]
struct ActCache {
    ty: Option<GgmlType>,
    buf: Vec<u8>,
}

impl ActCache {
    fn invalidate(&mut self) {
        self.ty = None;
    }
}

#[derive(Default)]
struct AttnScratch {
    /// The run's queries of one head, rounded to f16 and widened back: `[token][hd]`.
    qf: Vec<f32>,
    /// The query of a one-token run as f16 bits.
    q16: Vec<u16>,
    /// The first position each token of the run attends to.
    firsts: Vec<usize>,
    /// One key row of one KV head, widened to f32.
    krow: Vec<f32>,
    /// A chunk of value rows of one KV head, widened to f32: `[key][vhd]`.
    vrows: Vec<f32>,
    /// Scores, then probabilities: `[position - lo][token]`.
    scores: Vec<f32>,
    /// Per token of the run: the largest score, then the softmax sum and its inverse.
    maxs: Vec<f32>,
    sums: Vec<f32>,
    /// Outputs of this thread's units in unit order, `[unit][token][vhd]`.
    out: Vec<f32>,
}

/// Reusable buffers for [`Model::forward`]; grows to the largest batch seen and is then reused,
/// so steady-state decoding allocates nothing.
#[derive(Default)]
pub struct Workspace {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    tmp: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    logits: Vec<f32>,
    act: ActCache,
    attn_scratch: Vec<Mutex<AttnScratch>>,
    /// Attention work: runs of tokens, and where each thread's units begin.
    runs: Vec<Run>,
    unit_bounds: Vec<usize>,
    /// One packed embedding row gathered back into its original encoding.
    row_bytes: Vec<u8>,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace::default()
    }

    fn prepare(&mut self, c: &Config, n_tok: usize, n_threads: usize) {
        let grow = |v: &mut Vec<f32>, n: usize| {
            if v.len() < n {
                v.resize(n, 0.0);
            }
        };
        grow(&mut self.x, n_tok * c.n_embd);
        grow(&mut self.xn, n_tok * c.n_embd);
        grow(&mut self.q, n_tok * c.n_head * c.head_dim);
        grow(&mut self.k, n_tok * c.kv_dim_k());
        grow(&mut self.v, n_tok * c.kv_dim_v());
        grow(&mut self.attn, n_tok * c.n_head * c.v_head_dim);
        grow(&mut self.tmp, n_tok * c.n_embd);
        grow(&mut self.gate, n_tok * c.n_ff);
        grow(&mut self.up, n_tok * c.n_ff);
        while self.attn_scratch.len() < n_threads {
            self.attn_scratch.push(Mutex::new(AttnScratch::default()));
        }
    }
}

/// The reference projection: rows split across threads, each row dequantized once and dotted
/// with every token's f32 activations (8 lanes, then a fixed pairwise sum).
fn project_exact(
    pool: &ThreadPool,
    m: &QMatrix<'_>,
    x: &[f32],
    n_tok: usize,
    out: &mut [f32],
) -> Result<()> {
    let results: Vec<Mutex<Result<Vec<f32>>>> = (0..pool.n_threads())
        .map(|_| Mutex::new(Ok(Vec::new())))
        .collect();
    pool.run(|ti, nt| {
        let (r0, r1) = (ti * m.rows / nt, (ti + 1) * m.rows / nt);
        let mut w = vec![0f32; m.cols];
        let mut scratch = Vec::new();
        let mut local = vec![0f32; (r1 - r0) * n_tok];
        let mut res = Ok(());
        for r in r0..r1 {
            if let Err(e) = m.dequantize_row(r, &mut scratch, &mut w) {
                res = Err(e.into());
                break;
            }
            for t in 0..n_tok {
                let xr = &x[t * m.cols..(t + 1) * m.cols];
                let mut acc = [0f32; 8];
                for (wc, xc) in w.chunks(8).zip(xr.chunks(8)) {
                    for ((a, wv), xv) in acc.iter_mut().zip(wc).zip(xc) {
                        *a += wv * xv;
                    }
                }
                local[(r - r0) * n_tok + t] = ((acc[0] + acc[4]) + (acc[1] + acc[5]))
                    + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            }
        }
        *results[ti].lock().unwrap_or_else(|e| e.into_inner()) = res.map(|()| local);
    });
    let nt = pool.n_threads();
    for (ti, cell) in results.into_iter().enumerate() {
        let local = cell.into_inner().unwrap_or_else(|e| e.into_inner())?;
        let r0 = ti * m.rows / nt;
        let n_rows = local.len() / n_tok.max(1);
        for i in 0..n_rows {
            for t in 0..n_tok {
                out[t * m.rows + r0 + i] = local[i * n_tok + t];
            }
        }
    }
    Ok(())
}

/// Whether weights are packed at load: where the CPU has packed kernels, unless
/// `HEARTH_PACK=off` (for comparing the two layouts' speed; both give correct results, in
/// slightly different last bits).
fn packing_enabled() -> bool {
    hearth_kernels::packed::has_kernels()
        && !std::env::var("HEARTH_PACK").is_ok_and(|v| v.eq_ignore_ascii_case("off") || v == "0")
}

/// Bytes of a tensor packed before its file pages are released.
const PACK_SLICE: usize = 4 << 20;

/// Packs every matrix whose type and shape have packed kernels
/// (`hearth_kernels::packed::packable`) into one anonymous arena, a few MB at a time, and
/// releases the mapped file pages behind each slice: the model takes no more resident memory
/// than before and the peak is a few slices over it. The arena asks for transparent huge
/// pages (fewer page faults while packing, fewer TLB misses while streaming the weights).
/// Decode and prompt processing then run the packed kernels (eight rows per SIMD register,
/// the same kernel for any number of tokens).
fn pack_weights(gguf: &Gguf, weights: &mut [&mut Weight]) -> Result<Option<memmap2::MmapMut>> {
    use hearth_kernels::packed;
    let mut total = 0usize;
    for w in weights.iter_mut() {
        if !packed::packable(w.ty, w.rows, w.cols) {
            continue;
        }
        let len = w.rows * hearth_kernels::row_bytes(w.ty, w.cols);
        w.packed = Some(total..total + len);
        // Each tensor starts on a cache line.
        total = (total + len).next_multiple_of(64);
    }
    if total == 0 {
        return Ok(None);
    }
    let mut arena = memmap2::MmapMut::map_anon(total).map_err(|source| Error::PackedMemory {
        bytes: total,
        source,
    })?;
    #[cfg(target_os = "linux")]
    // Only a hint: without huge pages the arena works the same.
    let _ = arena.advise(memmap2::Advice::HugePage);
    // One job per tensor, each with its own slice of the arena; the cores take them largest
    // first (writing fresh memory and the re-layout both scale with cores).
    let mut jobs: Vec<(&Weight, &mut [u8])> = Vec::new();
    let mut rest: &mut [u8] = &mut arena;
    let mut at = 0;
    let mut order: Vec<&Weight> = weights.iter().map(|w| &**w).collect();
    order.retain(|w| w.packed.is_some());
    order.sort_by_key(|w| w.packed.as_ref().map_or(0, |r| r.start));
    for w in order {
        let Some(range) = w.packed.clone() else {
            continue;
        };
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(range.start - at);
        let (dst, tail) = tail.split_at_mut(range.len());
        rest = tail;
        at = range.end;
        jobs.push((w, dst));
    }
    // Ascending, so `pop` hands out the largest remaining tensor.
    jobs.sort_by_key(|(_, dst)| dst.len());
    let jobs = Mutex::new(jobs);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some((w, dst)) = job else { break };
                let src = gguf.tensor_data(&gguf.tensors()[w.index]);
                // A few MB of whole groups at a time, releasing the file's pages behind each
                // slice, so the peak stays a slice over the final size even for a large table.
                let gb = packed::GROUP * hearth_kernels::row_bytes(w.ty, w.cols);
                let step = (PACK_SLICE / gb).max(1) * gb;
                for at in (0..src.len()).step_by(step) {
                    let end = (at + step).min(src.len());
                    let rows = (end - at) / gb * packed::GROUP;
                    let r = packed::pack_into(w.ty, rows, w.cols, &src[at..end], &mut dst[at..end]);
                    if let Err(e) = r {
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                    gguf.release_tensor_bytes(w.index, at..end);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e.into());
    }
    Ok(Some(arena))
}

fn add(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

fn find<'a>(g: &'a Gguf, name: &str) -> Result<&'a TensorInfo> {
    g.tensor(name)
        .ok_or_else(|| Error::MissingTensor(name.to_string()))
}

fn dim(t: &TensorInfo, i: usize) -> u64 {
    t.dims.get(i).copied().unwrap_or(1)
}

/// A weight of `cols` inputs and `rows` outputs (GGUF dims `[cols, rows]`).
fn weight(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<Weight> {
    let info = find(g, name)?;
    if dim(info, 0) as usize != cols || dim(info, 1) as usize != rows || info.dims.len() > 2 {
        return Err(Error::BadShape {
            name: name.to_string(),
            expected: vec![cols as u64, rows as u64],
            found: info.dims.clone(),
        });
    }
    if !hearth_kernels::is_supported(info.ty) {
        return Err(Error::UnsupportedTensorType {
            name: name.to_string(),
            ty: info.ty,
            supported: hearth_kernels::SUPPORTED
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let index = g
        .tensors()
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| Error::MissingTensor(name.to_string()))?;
    Ok(Weight {
        index,
        ty: info.ty,
        rows,
        cols,
        packed: None,
    })
}

/// A small vector (norm weights, biases) decoded to f32.
fn vector(g: &Gguf, name: &str, len: usize) -> Result<Vec<f32>> {
    let info = find(g, name)?;
    if info.n_elements() != len as u64 {
        return Err(Error::BadShape {
            name: name.to_string(),
            expected: vec![len as u64],
            found: info.dims.clone(),
        });
    }
    let mut out = vec![0f32; len];
    hearth_kernels::dequantize_row(info.ty, g.tensor_data(info), &mut out)?;
    Ok(out)
}
