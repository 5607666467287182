//! A layer's attention branch: Q, K and V projections, biases and per-head norms, RoPE, the
//! cache write, then causal attention over the paged KV cache for the whole batch, split
//! across threads in units of (run of tokens, KV head), every token's arithmetic the one-token
//! arithmetic.

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
            if let Some(t) = c.attn_temperature {
                let m = t.at(item.pos);
                q.iter_mut().for_each(|x| *x *= m);
            }
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
    /// Work is split into units of (run, KV heads): a run is up to [`ATTN_RUN`] consecutive
    /// batch tokens of one sequence at consecutive positions (a prompt chunk; a decoding
    /// sequence is a run of one), and a unit computes, for all of the run's tokens, every query
    /// head that shares its KV heads (grouped-query attention). It widens each f16 key and
    /// value row to f32 once and uses it for all of those queries, instead of once per token
    /// and query head. With runs enough to keep every thread busy (several sequences, or a
    /// long prompt), a unit takes all KV heads, so it reads each cached row whole and the
    /// paged cache's blocks front to back, which the hardware prefetchers follow; with few
    /// runs it takes one KV head, so the heads still spread over the threads. Units are cut into
    /// a few pieces per thread, contiguous ranges of about equal cost (keys seen, because causal
    /// attention gives later tokens more work than earlier ones), which threads claim one at a
    /// time, so a descheduled thread's share goes to the running ones.
    ///
    /// Every (token, head)'s arithmetic is the one-token arithmetic, in the same order: each
    /// score is the F32 dot of the widened key and the query rounded to f16 (the same
    /// operations as the F16 dot of the f16 values, since widening is exact), softmax walks the
    /// keys in order, and the output sums `p · v` over the keys in order. So results depend
    /// neither on the batch nor on how it is split; the tests below check them against that
    /// definition.
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
        let n_kv = c.n_kv_head;
        let group = c.n_head / n_kv;
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

        // Runs, then units (run-major, KV-head-minor) and their split between threads.
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
        // KV heads per unit: all of them when each thread gets several runs.
        let hpu = if ws.runs.len() >= RUNS_PER_THREAD * nt {
            n_kv
        } else {
            1
        };
        let per_run = n_kv / hpu;
        // Units are cut into a few pieces per thread, which threads claim one at a time, so a
        // descheduled thread's share goes to the running ones.
        let units = ws.runs.len() * per_run;
        let np = if nt == 1 {
            1
        } else {
            (nt * ATTN_PIECES_PER_THREAD).min(units).max(1)
        };
        let total: usize = ws.runs.iter().map(|r| r.cost).sum::<usize>() * per_run;
        ws.unit_bounds.clear();
        ws.unit_bounds.push(0);
        let mut acc = 0usize;
        let mut unit = 0usize;
        for r in ws.runs.iter() {
            for _ in 0..per_run {
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

        // A unit's query rows are `[KV head][token][head of its group]`: for each of its KV
        // heads, the rows of the tokens that see a key are then one contiguous range.
        let q = &ws.q;
        let scratch = &ws.attn_scratch;
        let runs = &ws.runs;
        let bounds = &ws.unit_bounds;
        let exact = self.exact;
        // A raw score as softmax takes it: soft-capped where the model caps (Gemma 2:
        // `cap · tanh(s / cap)`, the division a multiplication as in llama.cpp), then scaled.
        let softcap = c.attn_softcap.map(|cap| (cap, 1.0 / cap));
        let attn_scale = c.attn_scale;
        let prep = move |s: f32| match softcap {
            Some((cap, inv)) => hearth_kernels::math::tanh_f32(s * inv) * cap * attn_scale,
            None => s * attn_scale,
        };
        pool.run_chunks(np, |ti, piece| {
            // Each thread has its own scratch; the lock is never contended.
            let mut guard = scratch[ti].lock().unwrap_or_else(|e| e.into_inner());
            let s = &mut *guard;
            s.pieces.push(piece);
            for u in bounds[piece]..bounds[piece + 1] {
                let (run, g0) = (&runs[u / per_run], (u % per_run) * hpu);
                let items = &batch[run.start..run.start + run.len];
                let view = kv.view(il, seqs[items[0].seq].as_ref());
                let len = run.len;
                let rows = hpu * len * group;
                let row = |gi: usize, r: usize| (gi * len + r) * group;
                // Queries meet f16 keys as f16, as in llama.cpp: rounded to f16 here.
                s.qf.clear();
                for gi in 0..hpu {
                    for t in run.start..run.start + len {
                        let at = t * q_dim + (g0 + gi) * group * hd;
                        s.qf.extend_from_slice(&q[at..at + group * hd]);
                    }
                }
                hearth_kernels::round_to_f16(&mut s.qf);
                s.firsts.clear();
                s.firsts.extend(items.iter().map(first_of));
                let lo = s.firsts.iter().copied().min().unwrap_or(0);
                let hi = items[len - 1].pos;
                let span = hi + 1 - lo;
                // The tokens that see key `j` are a contiguous range (causal on the right,
                // the window on the left).
                let pos0 = items[0].pos;
                let firsts = &s.firsts;
                let seen_by =
                    |j: usize| (j.saturating_sub(pos0), firsts.partition_point(|&f| f <= j));
                // Scores, then probabilities. A prompt run keeps them key-major,
                // `[position - lo][row]`: the rows that see a key are contiguous there, so a
                // key's dots land in place and its softmax steps run over the rows side by side.
                // A decoding token keeps them row-major, `[row][position - lo]`, so each row's
                // softmax walks its keys contiguously.
                let key_major = len > 1;
                let at_key = |row: usize, jj: usize| {
                    if key_major {
                        jj * rows + row
                    } else {
                        row * span + jj
                    }
                };
                s.scores.clear();
                s.scores.resize(rows * span, 0.0);
                s.krow.resize(hpu * hd, 0.0);
                s.dots.resize(rows, 0.0);
                for j in lo..=hi {
                    let (r0, r1) = seen_by(j);
                    if r0 >= r1 {
                        continue;
                    }
                    let k: &[u8] = bytemuck::cast_slice(&view.k(j)[g0 * hd..(g0 + hpu) * hd]);
                    // Whole rows of f16 values always decode; the length is the rows' own.
                    let _ = hearth_kernels::dequantize_row(GgmlType::F16, k, &mut s.krow);
                    // One key against all of its tokens' queries at once, per KV head.
                    for gi in 0..hpu {
                        let (a, b) = (row(gi, r0), row(gi, r1));
                        let krow = &s.krow[gi * hd..(gi + 1) * hd];
                        let qs = &s.qf[a * hd..b * hd];
                        if key_major {
                            let at = at_key(a, j - lo);
                            hearth_kernels::dot_f32_rows(
                                hd,
                                krow,
                                qs,
                                &mut s.scores[at..at + b - a],
                            );
                        } else {
                            hearth_kernels::dot_f32_rows(hd, krow, qs, &mut s.dots[a..b]);
                            for (r, &d) in (a..b).zip(&s.dots[a..b]) {
                                s.scores[at_key(r, j - lo)] = d;
                            }
                        }
                    }
                }
                // Softmax per row over the keys its token sees, in key order: scale and
                // maximum, then `exp_f32` and a running sum, then the probabilities, rounded to
                // f16 as llama.cpp multiplies V by them (not in exact mode).
                if key_major {
                    // Every row still takes its own keys in order (scale and maximum, then
                    // `exp_f32` and a running sum, then the probabilities): the one-token
                    // numbers, computed key by key for the rows side by side.
                    s.maxs.clear();
                    s.maxs.resize(rows, f32::NEG_INFINITY);
                    s.sums.clear();
                    s.sums.resize(rows, 0.0);
                    for j in lo..=hi {
                        let (r0, r1) = seen_by(j);
                        for gi in 0..hpu {
                            let (a, b) = (row(gi, r0), row(gi, r1));
                            let at = at_key(a, j - lo);
                            for (sc, m) in
                                s.scores[at..at + b - a].iter_mut().zip(&mut s.maxs[a..b])
                            {
                                *sc = prep(*sc);
                                *m = m.max(*sc);
                            }
                        }
                    }
                    for j in lo..=hi {
                        let (r0, r1) = seen_by(j);
                        for gi in 0..hpu {
                            let (a, b) = (row(gi, r0), row(gi, r1));
                            let at = at_key(a, j - lo);
                            hearth_kernels::exp_sub_rows(
                                &mut s.scores[at..at + b - a],
                                &s.maxs[a..b],
                                &mut s.sums[a..b],
                            );
                        }
                    }
                    for sum in s.sums.iter_mut() {
                        *sum = 1.0 / *sum;
                    }
                    for j in lo..=hi {
                        let (r0, r1) = seen_by(j);
                        for gi in 0..hpu {
                            let (a, b) = (row(gi, r0), row(gi, r1));
                            let at = at_key(a, j - lo);
                            let ps = &mut s.scores[at..at + b - a];
                            for (p, inv) in ps.iter_mut().zip(&s.sums[a..b]) {
                                *p *= inv;
                            }
                            if !exact {
                                hearth_kernels::round_to_f16(ps);
                            }
                        }
                    }
                } else {
                    for (r, item) in items.iter().enumerate() {
                        let (a, b) = (s.firsts[r] - lo, item.pos + 1 - lo);
                        for gi in 0..hpu {
                            for at in row(gi, r)..row(gi, r + 1) {
                                let ps = &mut s.scores[at * span + a..at * span + b];
                                let mut m = f32::NEG_INFINITY;
                                for sc in ps.iter_mut() {
                                    *sc = prep(*sc);
                                    m = m.max(*sc);
                                }
                                hearth_kernels::exp_sub(ps, m);
                                let mut sum = 0f32;
                                for &e in ps.iter() {
                                    sum += e;
                                }
                                let inv = 1.0 / sum;
                                for p in ps.iter_mut() {
                                    *p *= inv;
                                }
                                if !exact {
                                    hearth_kernels::round_to_f16(ps);
                                }
                            }
                        }
                    }
                }
                // Values, a chunk of keys at a time (widened once into `[KV head][key][vhd]`,
                // kept in L1): each row adds the keys it sees of the chunk with its output held
                // in registers (`axpy_keys`). Every output element still receives `p·v` key by
                // key in position order, the one-token operations.
                let o0 = s.out.len();
                s.out.resize(o0 + rows * vhd, 0.0);
                let chunk = (4096 / (hpu * vhd).max(1)).max(8);
                let mut c0 = lo;
                while c0 <= hi {
                    let c1 = (c0 + chunk).min(hi + 1);
                    let n = c1 - c0;
                    s.vrows.resize(hpu * n * vhd, 0.0);
                    for j in c0..c1 {
                        let v = &view.v(j)[g0 * vhd..(g0 + hpu) * vhd];
                        for gi in 0..hpu {
                            let src: &[u8] = bytemuck::cast_slice(&v[gi * vhd..(gi + 1) * vhd]);
                            let at = (gi * n + j - c0) * vhd;
                            // A whole row of f16 values always decodes.
                            let _ = hearth_kernels::dequantize_row(
                                GgmlType::F16,
                                src,
                                &mut s.vrows[at..at + vhd],
                            );
                        }
                    }
                    for (r, item) in items.iter().enumerate() {
                        let (a, b) = (s.firsts[r].max(c0), (item.pos + 1).min(c1));
                        if a >= b {
                            continue;
                        }
                        for gi in 0..hpu {
                            let base = gi * n;
                            for at in row(gi, r)..row(gi, r + 1) {
                                hearth_kernels::axpy_keys(
                                    &s.vrows[(base + a - c0) * vhd..(base + b - c0) * vhd],
                                    &s.scores[at_key(at, a - lo)..],
                                    if key_major { rows } else { 1 },
                                    &mut s.out[o0 + at * vhd..o0 + (at + 1) * vhd],
                                );
                            }
                        }
                    }
                    c0 = c1;
                }
            }
        });
        // Put each unit's rows where they belong: token t's heads of KV head g start at
        // (t * n_head + g * group) * vhd, adjacent as in the unit.
        let width = group * vhd;
        for m in ws.attn_scratch.iter_mut().take(nt) {
            let s = m.get_mut().unwrap_or_else(|e| e.into_inner());
            let mut at = 0;
            for &piece in &s.pieces {
                for u in ws.unit_bounds[piece]..ws.unit_bounds[piece + 1] {
                    let (run, g0) = (&ws.runs[u / per_run], (u % per_run) * hpu);
                    for g in g0..g0 + hpu {
                        for t in run.start..run.start + run.len {
                            let dst = (t * c.n_head + g * group) * vhd;
                            ws.attn[dst..dst + width].copy_from_slice(&s.out[at..at + width]);
                            at += width;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;

/// Most tokens of one sequence whose attention one work unit computes together.
const ATTN_RUN: usize = 16;

/// Runs per thread from which a work unit takes every KV head rather than one.
const RUNS_PER_THREAD: usize = 4;

/// Pieces per thread the units are cut into (see [`Model::attend`]): enough for running threads
/// to take over a descheduled one's share, few enough that claiming them costs nothing.
const ATTN_PIECES_PER_THREAD: usize = 4;

/// Consecutive batch tokens of one sequence (see [`Model::attend`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Run {
    /// Index of its first token in the batch.
    start: usize,
    len: usize,
    /// Keys seen by its tokens together (per query head).
    cost: usize,
}

#[derive(Default)]
pub(super) struct AttnScratch {
    /// The unit's queries, rounded to f16 and widened back: `[KV head][token][head][hd]`.
    qf: Vec<f32>,
    /// One key's scores against the query rows that see it.
    dots: Vec<f32>,
    /// Per row of a prompt run: the largest score, then the softmax sum and its inverse.
    maxs: Vec<f32>,
    sums: Vec<f32>,
    /// The first position each token of the run attends to.
    firsts: Vec<usize>,
    /// One key row of the unit's KV heads, widened to f32: `[KV head][hd]`.
    krow: Vec<f32>,
    /// A chunk of value rows of the unit's KV heads, widened to f32: `[KV head][key][vhd]`.
    vrows: Vec<f32>,
    /// Scores, then probabilities: `[row][position - lo]`.
    scores: Vec<f32>,
    /// Outputs of the pieces this thread ran, in the order it ran them, each piece's units in
    /// unit order: `[unit][KV head][token][head][vhd]`.
    out: Vec<f32>,
    /// The pieces this thread ran, in order.
    pieces: Vec<usize>,
}
