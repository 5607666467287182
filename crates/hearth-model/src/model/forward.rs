//! The batched forward pass: embeddings, the decoder layers, the final norm and the logits,
//! with the projections it runs (quantized, or the exact reference) and its reusable buffers.

use std::sync::Mutex;

use hearth_gguf::GgmlType;
use hearth_kernels::{activation_type, matmul, QMatrix, ThreadPool};

use super::attention::{AttnScratch, Run};
use super::{BatchItem, FeedForward, Model, Weight};
use crate::config::{Activation, Config};
use crate::kv::{KvCache, SeqKv};
use crate::ops;
use crate::{Error, Result};

impl Model {
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

        // x = token_embd[token] · embd_scale: (n_tok, n_embd), one row of the (quantized)
        // table per token.
        let emb = self.mat(&self.tok_embd);
        for (t, item) in batch.iter().enumerate() {
            let x = &mut ws.x[t * d..(t + 1) * d];
            emb.dequantize_row(item.token as usize, &mut ws.row_bytes, x)?;
            if c.embd_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= c.embd_scale);
            }
        }

        // Each layer: two residual branches on x, every tensor (n_tok, n_embd).
        let n = n_tok * d;
        for (il, layer) in self.layers.iter().enumerate() {
            // x += attn_post_norm(attention(attn_norm(x)))
            rms_norm_rows(&ws.x, &layer.attn_norm, c.rms_eps, &mut ws.xn[..n]);
            self.attention(il, batch, seqs, kv, ws, pool)?;
            let post_norm = layer.attn_post_norm.as_deref();
            add_residual(&mut ws.x, &mut ws.tmp[..n], post_norm, c.rms_eps);

            // x += ffn_post_norm(ffn(ffn_norm(x)))
            rms_norm_rows(&ws.x, &layer.ffn_norm, c.rms_eps, &mut ws.xn[..n]);
            match &layer.ffn {
                FeedForward::Dense { gate, up, down } => {
                    self.dense_ffn(gate, up, down, n_tok, ws, pool)?;
                }
                FeedForward::Moe(moe) => self.moe_ffn(il, moe, n_tok, ws, pool)?,
            }
            let post_norm = layer.ffn_post_norm.as_deref();
            add_residual(&mut ws.x, &mut ws.tmp[..n], post_norm, c.rms_eps);
        }

        // logits = output · output_norm(x) for the n_out tokens that want them:
        // (n_out, n_vocab), soft-capped where the model says so.
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
                // llama.cpp scales by 1/cap (a multiplication, which rounds unlike a division).
                let inv = 1.0 / cap;
                out.iter_mut()
                    .for_each(|v| *v = hearth_kernels::math::tanh_f32(*v * inv) * cap);
            }
        }
        Ok(&ws.logits[..n_out * c.n_vocab])
    }

    /// The gated MLP on the normed input `ws.xn`, into `ws.tmp`:
    /// `down · (act(gate · x) ⊙ (up · x))`.
    fn dense_ffn(
        &self,
        gate: &Weight,
        up: &Weight,
        down: &Weight,
        n_tok: usize,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<()> {
        let c = &self.config;
        let n_ff = c.n_ff;
        ws.act.invalidate();
        // gate, up: (n_tok, n_ff)
        self.project(pool, gate, &mut ws.act, &ws.xn, n_tok, &mut ws.gate)?;
        self.project(pool, up, &mut ws.act, &ws.xn, n_tok, &mut ws.up)?;
        // gate = act(gate) ⊙ up: (n_tok, n_ff)
        for t in 0..n_tok {
            let g = &mut ws.gate[t * n_ff..(t + 1) * n_ff];
            let u = &ws.up[t * n_ff..(t + 1) * n_ff];
            match c.activation {
                Activation::Silu => ops::swiglu(g, u),
                Activation::GeluTanh => ops::geglu(g, u),
            }
        }
        ws.act.invalidate();
        // tmp = down · gate: (n_tok, n_embd)
        self.project(pool, down, &mut ws.act, &ws.gate, n_tok, &mut ws.tmp)?;
        Ok(())
    }

    /// `out = x · wᵀ` for `n_tok` rows of `x`, quantizing `x` to the weight's activation type
    /// unless `act` already holds it in that type.
    pub(super) fn project(
        &self,
        pool: &ThreadPool,
        w: &Weight,
        act: &mut ActCache,
        x: &[f32],
        n_tok: usize,
        out: &mut [f32],
    ) -> Result<()> {
        self.project_mat(pool, &self.mat(w), act, x, n_tok, out)
    }

    /// [`Model::project`] on a matrix already at hand (one expert of a 3-D tensor).
    pub(super) fn project_mat(
        &self,
        pool: &ThreadPool,
        m: &QMatrix<'_>,
        act: &mut ActCache,
        x: &[f32],
        n_tok: usize,
        out: &mut [f32],
    ) -> Result<()> {
        if self.exact {
            return project_exact(
                pool,
                m,
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
        matmul(pool, m, &act.buf, n_tok, &mut out[..n_tok * m.rows]);
        Ok(())
    }
}

/// Quantized activations of the last projection input, reused while the input is unchanged
/// (Q, K and V share one quantization; so do gate and up).
#[derive(Default)]
pub(super) struct ActCache {
    ty: Option<GgmlType>,
    buf: Vec<u8>,
}

impl ActCache {
    pub(super) fn invalidate(&mut self) {
        self.ty = None;
    }
}

/// Reusable buffers for [`Model::forward`]; grows to the largest batch seen and is then reused,
/// so steady-state decoding allocates nothing.
#[derive(Default)]
pub struct Workspace {
    /// The residual stream: (n_tok, n_embd).
    x: Vec<f32>,
    /// A branch's normed input: (n_tok, n_embd); at the end, the normed rows that want logits.
    pub(super) xn: Vec<f32>,
    /// (n_tok, n_head * head_dim)
    pub(super) q: Vec<f32>,
    /// (n_tok, n_kv_head * head_dim)
    pub(super) k: Vec<f32>,
    /// (n_tok, n_kv_head * v_head_dim)
    pub(super) v: Vec<f32>,
    /// Attention's output before `wo`: (n_tok, n_head * v_head_dim).
    pub(super) attn: Vec<f32>,
    /// A branch's output before the residual add: (n_tok, n_embd).
    pub(super) tmp: Vec<f32>,
    /// (n_tok, n_ff); then `act(gate) ⊙ up`.
    gate: Vec<f32>,
    /// (n_tok, n_ff)
    up: Vec<f32>,
    /// (n_out, n_vocab)
    logits: Vec<f32>,
    pub(super) act: ActCache,
    pub(super) attn_scratch: Vec<Mutex<AttnScratch>>,
    /// Attention work: runs of tokens, and where each piece's units begin.
    pub(super) runs: Vec<Run>,
    pub(super) unit_bounds: Vec<usize>,
    /// One packed embedding row gathered back into its original encoding.
    row_bytes: Vec<u8>,
    /// The experts' buffers (mixture-of-experts models).
    pub(super) moe: super::moe::MoeScratch,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace::default()
    }

    pub(super) fn prepare(&mut self, c: &Config, n_tok: usize, n_threads: usize) {
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
        // A mixture of experts sizes its own (`moe::MoeScratch`); its declared n_ff is unused.
        let n_ff = if c.experts.is_some() { 0 } else { c.n_ff };
        grow(&mut self.gate, n_tok * n_ff);
        grow(&mut self.up, n_tok * n_ff);
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

/// `out = rms_norm(x) * w`, token by token (rows of `w.len()`), for the tokens `out` has
/// room for.
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (x, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        ops::rms_norm(x, w, eps, out);
    }
}

/// `x += post_norm(branch)`: a branch's residual add, its output RMS-normed token by token
/// first where the architecture has a post-norm (Gemma 3). `x` may hold more rows than
/// `branch`; only `branch`'s are touched.
fn add_residual(x: &mut [f32], branch: &mut [f32], post_norm: Option<&[f32]>, eps: f32) {
    if let Some(w) = post_norm {
        for out in branch.chunks_exact_mut(w.len()) {
            ops::rms_norm_inplace(out, w, eps);
        }
    }
    add(x, branch);
}

pub(super) fn add(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}
