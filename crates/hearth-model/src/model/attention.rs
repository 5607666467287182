//! A layer's attention branch: Q, K and V projections, biases and per-head norms, RoPE, the
//! cache write, then causal attention over the paged KV cache for the whole batch, split
//! across threads in units of (run of tokens, head), every token's arithmetic the one-token
//! arithmetic.

use half::f16;
use hearth_gguf::GgmlType;
use hearth_kernels::ThreadPool;

use super::forward::{add, Workspace};
use super::{Attention, BatchItem, Model};
use crate::kv::{KvCache, SeqKv};
use crate::ops;
use crate::Result;

impl Model {
    /// Layer `il`'s attention branch on the normed input `ws.xn`, into `ws.tmp`:
    /// `wo · softmax(q·kᵀ · attn_scale) · v` over each token's visible positions, after the
    /// token's own keys and values reach the cache.
    pub(super) fn attention<S: AsRef<SeqKv> + Sync>(
        &self,
        il: usize,
        batch: &[BatchItem],
        seqs: &[S],
        kv: &mut KvCache,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<()> {
        let c = &self.config;
        let attn: &Attention = &self.layers[il].attn;
        let n_tok = batch.len();
        let hd = c.head_dim;
        let q_dim = c.n_head * hd;
        let kd = c.kv_dim_k();
        let vd = c.kv_dim_v();
        ws.act.invalidate();
        // q: (n_tok, n_head * head_dim), k: (n_tok, n_kv_head * head_dim),
        // v: (n_tok, n_kv_head * v_head_dim)
        self.project(pool, &attn.wq, &mut ws.act, &ws.xn, n_tok, &mut ws.q)?;
        self.project(pool, &attn.wk, &mut ws.act, &ws.xn, n_tok, &mut ws.k)?;
        self.project(pool, &attn.wv, &mut ws.act, &ws.xn, n_tok, &mut ws.v)?;
        let rope = if c.layer_is_swa[il] {
            &self.rope_swa
        } else {
            &self.rope_full
        };
        for (t, item) in batch.iter().enumerate() {
            let q = &mut ws.q[t * q_dim..(t + 1) * q_dim]; // (n_head, head_dim)
            let k = &mut ws.k[t * kd..(t + 1) * kd]; // (n_kv_head, head_dim)
            let v = &mut ws.v[t * vd..(t + 1) * vd]; // (n_kv_head, v_head_dim)
            if let Some(b) = &attn.bias {
                add(q, &b.bq);
                add(k, &b.bk);
                add(v, &b.bv);
            }
            if let Some(n) = &attn.qk_norm {
                q.chunks_exact_mut(hd)
                    .for_each(|h| ops::rms_norm_inplace(h, &n.q_norm, c.rms_eps));
                k.chunks_exact_mut(hd)
                    .for_each(|h| ops::rms_norm_inplace(h, &n.k_norm, c.rms_eps));
            }
            rope.apply(q, hd, item.pos);
            rope.apply(k, hd, item.pos);
            if c.q_scale != 1.0 {
                q.iter_mut().for_each(|x| *x *= c.q_scale);
            }
            // Keys and values reach the cache before any query of this batch reads it.
            kv.write(il, seqs[item.seq].as_ref(), item.pos, k, v)?;
        }
        // attn: (n_tok, n_head * v_head_dim)
        self.attend(il, batch, seqs, kv, ws, pool);
        ws.act.invalidate();
        // tmp = wo · attn: (n_tok, n_embd)
        self.project(pool, &attn.wo, &mut ws.act, &ws.attn, n_tok, &mut ws.tmp)?;
        Ok(())
    }

    /// Causal (and, on local layers, windowed) attention for every token of the batch, all
    /// heads, split across threads; each token reads its sequence's keys in position order.
    ///
    /// Work is split into units of (run, head): a run is up to [`ATTN_RUN`] consecutive batch
    /// tokens of one sequence at consecutive positions (a prompt chunk; a decoding sequence is
    /// a run of one). A unit widens each key and value row to f32 once and uses it for all of
    /// the run's tokens that see it, instead of once per token. Units are cut into a few
    /// pieces per thread, contiguous ranges of about equal cost (keys seen, because causal
    /// attention gives later tokens more work than earlier ones), which threads claim one at a
    /// time, so a descheduled thread's share goes to the running ones.
    ///
    /// Every token's arithmetic is the one-token arithmetic, in the same order: each score is
    /// the F32 dot of the widened key and the query rounded to f16 (the same operations as the
    /// F16 dot of the f16 values, since widening is exact), softmax walks the keys in order, and
    /// the output sums `p · v` over the keys in order. So results do not depend on the batch.
    fn attend<S: AsRef<SeqKv> + Sync>(
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

        // Runs, then units (run-major, head-minor) and their split into pieces.
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
        let units = ws.runs.len() * c.n_head;
        let np = if nt == 1 {
            1
        } else {
            (nt * ATTN_PIECES_PER_THREAD).min(units).max(1)
        };
        let total: usize = ws.runs.iter().map(|r| r.cost).sum::<usize>() * c.n_head;
        ws.unit_bounds.clear();
        ws.unit_bounds.push(0);
        let mut acc = 0usize;
        let mut unit = 0usize;
        for r in ws.runs.iter() {
            for _ in 0..c.n_head {
                acc += r.cost;
                unit += 1;
                // Piece k's range ends at the first unit where the running cost reaches
                // k / np of the total.
                while ws.unit_bounds.len() < np && acc * np >= total * ws.unit_bounds.len() {
                    ws.unit_bounds.push(unit);
                }
            }
        }
        while ws.unit_bounds.len() <= np {
            ws.unit_bounds.push(unit);
        }
        for m in ws.attn_scratch.iter_mut() {
            let s = m.get_mut().unwrap_or_else(|e| e.into_inner());
            s.out.clear();
            s.pieces.clear();
        }

        let q = &ws.q;
        let scratch = &ws.attn_scratch;
        let runs = &ws.runs;
        let bounds = &ws.unit_bounds;
        let exact = self.exact;
        pool.run_chunks(np, |ti, piece| {
            // Each thread has its own scratch; the lock is never contended.
            let mut guard = scratch[ti].lock().unwrap_or_else(|e| e.into_inner());
            let s = &mut *guard;
            s.pieces.push(piece);
            for u in bounds[piece]..bounds[piece + 1] {
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
        for m in ws.attn_scratch.iter_mut().take(nt) {
            let s = m.get_mut().unwrap_or_else(|e| e.into_inner());
            let mut at = 0;
            for &piece in &s.pieces {
                for u in ws.unit_bounds[piece]..ws.unit_bounds[piece + 1] {
                    let (run, h) = (&ws.runs[u / c.n_head], u % c.n_head);
                    for r in 0..run.len {
                        let t = run.start + r;
                        let dst = (t * c.n_head + h) * vhd;
                        ws.attn[dst..dst + vhd].copy_from_slice(&s.out[at..at + vhd]);
                        at += vhd;
                    }
                }
            }
        }
    }
}

/// Most tokens of one sequence whose attention one work unit computes together.
const ATTN_RUN: usize = 16;

/// Pieces per thread the units are cut into (see [`Model::attend`]): enough for running threads
/// to take over a descheduled one's share, few enough that claiming them costs nothing.
const ATTN_PIECES_PER_THREAD: usize = 4;

/// Consecutive batch tokens of one sequence (see [`Model::attend`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Run {
    /// Index of its first token in the batch.
    start: usize,
    len: usize,
    /// Keys seen by its tokens together (per head).
    cost: usize,
}

#[derive(Default)]
pub(super) struct AttnScratch {
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
    /// Outputs of the pieces this thread ran, in the order it ran them, each piece's units in
    /// unit order: `[unit][token][vhd]`.
    out: Vec<f32>,
    /// The pieces this thread ran, in order.
    pieces: Vec<usize>,
}
