//! A mixture-of-experts feed-forward (`crate::arch::experts`): the router, the experts run over
//! the tokens routed to them, and the weighted sum.
//!
//! The experts' tensors stay in the memory-mapped file, never copied into the packed arena: a
//! 30B MoE's experts are most of its 18 GB, a token reads only `n_used` of `n_expert` of them,
//! and file pages are memory the OS can take back and read again, where the arena would pin it.
//!
//! # Batch invariance
//! Each expert is one `matmul` over the tokens routed to it, gathered into consecutive rows;
//! every output element of a matmul depends only on one weight row and one token's row, so
//! which other tokens share the expert changes nothing. A token's expert outputs land in slots
//! by their rank in its top-k and are summed in rank order (as llama.cpp does), the same for
//! every batch.

use hearth_gguf::{GgmlType, Gguf};
use std::sync::Mutex;

use hearth_kernels::{
    activation_type, quantize_activations, row_bytes, vec_dot, QMatrix, ThreadPool,
};

use super::forward::{ActCache, Workspace};
use super::load::{find, weight};
use super::{Model, Weight};
use crate::arch::experts::Experts;
use crate::config::{Activation, Config};
use crate::ops;
use crate::{Error, Result};

/// One layer's experts and router.
#[derive(Debug)]
pub(super) struct Moe {
    /// (n_expert, n_embd): one logit per expert.
    router: Weight,
    /// Per expert (n_ff_exp, n_embd).
    gate: ExpertMatrices,
    /// Per expert (n_ff_exp, n_embd).
    up: ExpertMatrices,
    /// Per expert (n_embd, n_ff_exp).
    down: ExpertMatrices,
    shared: Option<Shared>,
}

/// A shared expert (Qwen2-MoE): a gated MLP every token runs, scaled by a sigmoid gate.
#[derive(Debug)]
struct Shared {
    /// (1, n_embd)
    gate_inp: Weight,
    /// (n_ff_shexp, n_embd)
    gate: Weight,
    /// (n_ff_shexp, n_embd)
    up: Weight,
    /// (n_embd, n_ff_shexp)
    down: Weight,
}

/// A 3-D expert tensor in the mapped file: `n_expert` matrices of `rows` × `cols`, one after
/// another (GGUF dims `[cols, rows, n_expert]`).
#[derive(Debug)]
struct ExpertMatrices {
    index: usize,
    ty: GgmlType,
    rows: usize,
    cols: usize,
}

impl Moe {
    /// Layer `il`'s experts, router and shared expert, every shape checked.
    pub(super) fn load(g: &Gguf, c: &Config, x: &Experts, il: usize) -> Result<Moe> {
        let n = |s: &str| format!("blk.{il}.{s}");
        let d = c.n_embd;
        let router = weight(g, &n("ffn_gate_inp.weight"), d, x.n_expert)?;
        let gate = experts(g, &n("ffn_gate_exps.weight"), d, x.n_ff, x.n_expert)?;
        let up = experts(g, &n("ffn_up_exps.weight"), d, x.n_ff, x.n_expert)?;
        let down = experts(g, &n("ffn_down_exps.weight"), x.n_ff, d, x.n_expert)?;
        let shared = match x.shared_ff {
            Some(ff) => Some(Shared {
                gate_inp: weight(g, &n("ffn_gate_inp_shexp.weight"), d, 1)?,
                gate: weight(g, &n("ffn_gate_shexp.weight"), d, ff)?,
                up: weight(g, &n("ffn_up_shexp.weight"), d, ff)?,
                down: weight(g, &n("ffn_down_shexp.weight"), ff, d)?,
            }),
            None => None,
        };
        Ok(Moe {
            router,
            gate,
            up,
            down,
            shared,
        })
    }

    /// The 2-D matrices, which are packed like any other layer's; the experts are not.
    pub(super) fn matrices_mut(&mut self) -> Vec<&mut Weight> {
        let mut out = vec![&mut self.router];
        if let Some(s) = &mut self.shared {
            out.extend([&mut s.gate_inp, &mut s.gate, &mut s.up, &mut s.down]);
        }
        out
    }
}

/// A 3-D tensor of `n_expert` matrices of `rows` × `cols`.
fn experts(
    g: &Gguf,
    name: &str,
    cols: usize,
    rows: usize,
    n_expert: usize,
) -> Result<ExpertMatrices> {
    let info = find(g, name)?;
    let expected = [cols as u64, rows as u64, n_expert as u64];
    if info.dims[..] != expected {
        return Err(Error::BadShape {
            name: name.to_string(),
            expected: expected.to_vec(),
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
    Ok(ExpertMatrices {
        index,
        ty: info.ty,
        rows,
        cols,
    })
}

/// Buffers for the experts, reused from batch to batch.
#[derive(Default)]
pub(super) struct MoeScratch {
    /// Router logits, then probabilities: (n_tok, n_expert).
    probs: Vec<f32>,
    /// Each token's chosen experts and their weights, by rank: (n_tok, n_used).
    chosen: Vec<(u32, f32)>,
    /// The slots (`token * n_used + rank`) routed to each expert, in token order.
    routed: Vec<Vec<u32>>,
    /// Inputs of the tokens routed to one expert: (n_routed, n_embd).
    x: Vec<f32>,
    act: ActCache,
    /// (n_routed, n_ff); then `silu(gate) ⊙ up`.
    gate: Vec<f32>,
    /// (n_routed, n_ff)
    up: Vec<f32>,
    /// One expert's outputs: (n_routed, n_embd).
    y: Vec<f32>,
    /// Each slot's weighted expert output: (n_tok, n_used, n_embd).
    slots: Vec<f32>,
    /// The fused path's tokens quantized for the gate, the up and (per slot) the down
    /// projections, and its per-unit outputs.
    xq_gate: Vec<u8>,
    xq_up: Vec<u8>,
    xq_down: Vec<u8>,
    stage: Vec<f32>,
    /// The shared expert's gate logits: (n_tok, 1).
    shared_gate: Vec<f32>,
    /// The experts each layer chose for each token of the last batch, by rank:
    /// `routes[layer][token * n_used + rank]` (what tests check routing with).
    routes: Vec<Vec<u32>>,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

impl Workspace {
    /// The experts layer `il` routed each token of the last batch to, `n_used` per token in
    /// rank order (empty for a dense model).
    pub fn expert_routes(&self, il: usize) -> &[u32] {
        self.moe.routes.get(il).map_or(&[], |r| &r[..])
    }
}

impl Model {
    /// The mixture of experts on the normed input `ws.xn`, into `ws.tmp`.
    pub(super) fn moe_ffn(
        &self,
        il: usize,
        moe: &Moe,
        n_tok: usize,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<()> {
        let c = &self.config;
        let Some(x) = &c.experts else {
            return Ok(());
        };
        let d = c.n_embd;
        let (n_expert, k) = (x.n_expert, x.n_used);
        let s = &mut ws.moe;

        // probs = softmax(router · x): (n_tok, n_expert)
        grow(&mut s.probs, n_tok * n_expert);
        s.act.invalidate();
        let router = self.mat(&moe.router);
        self.project_mat(pool, &router, &mut s.act, &ws.xn, n_tok, &mut s.probs)?;
        s.chosen.clear();
        for row in s.probs[..n_tok * n_expert].chunks_exact_mut(n_expert) {
            softmax(row);
            top_k(row, k, x.norm_weights, &mut s.chosen);
        }
        if s.routes.len() <= il {
            s.routes.resize_with(il + 1, Vec::new);
        }
        s.routes[il].clear();
        s.routes[il].extend(s.chosen.iter().map(|&(e, _)| e));

        // Each expert once, over the tokens routed to it.
        s.routed.resize_with(n_expert, Vec::new);
        s.routed.iter_mut().for_each(Vec::clear);
        for (slot, &(e, _)) in s.chosen.iter().enumerate() {
            s.routed[e as usize].push(slot as u32);
        }
        grow(&mut s.slots, n_tok * k * d);
        if n_tok <= FUSED_MAX_TOKENS && !self.exact {
            self.experts_fused(moe, n_tok, k, &ws.xn, s, pool)?;
        } else {
            self.experts_each(moe, k, &ws.xn, s, pool)?;
        }
        // tmp = Σ_rank slots, in rank order: (n_tok, n_embd)
        for t in 0..n_tok {
            let out = &mut ws.tmp[t * d..(t + 1) * d];
            out.copy_from_slice(&s.slots[t * k * d..(t * k + 1) * d]);
            for r in 1..k {
                let src = &s.slots[(t * k + r) * d..(t * k + r + 1) * d];
                super::forward::add(out, src);
            }
        }

        if let Some(sh) = &moe.shared {
            self.shared_expert(sh, n_tok, ws, pool)?;
        }
        Ok(())
    }

    /// Each expert as its own matmuls over the tokens routed to it (prompts: many tokens per
    /// expert, so the multi-token tile kernels pay), each slot's weighted output into
    /// `s.slots`.
    fn experts_each(
        &self,
        moe: &Moe,
        k: usize,
        xn: &[f32],
        s: &mut MoeScratch,
        pool: &ThreadPool,
    ) -> Result<()> {
        let c = &self.config;
        let d = c.n_embd;
        for e in 0..s.routed.len() {
            let n_r = s.routed[e].len();
            if n_r == 0 {
                continue;
            }
            grow(&mut s.x, n_r * d);
            for (i, &slot) in s.routed[e].iter().enumerate() {
                let t = slot as usize / k;
                s.x[i * d..(i + 1) * d].copy_from_slice(&xn[t * d..(t + 1) * d]);
            }
            let (gate, up, down) = (
                self.expert_mat(&moe.gate, e),
                self.expert_mat(&moe.up, e),
                self.expert_mat(&moe.down, e),
            );
            let n_ff = gate.rows;
            grow(&mut s.gate, n_r * n_ff);
            grow(&mut s.up, n_r * n_ff);
            grow(&mut s.y, n_r * d);
            s.act.invalidate();
            self.project_mat(pool, &gate, &mut s.act, &s.x, n_r, &mut s.gate)?;
            self.project_mat(pool, &up, &mut s.act, &s.x, n_r, &mut s.up)?;
            glu(c.activation, &mut s.gate[..n_r * n_ff], &s.up[..n_r * n_ff]);
            s.act.invalidate();
            self.project_mat(pool, &down, &mut s.act, &s.gate, n_r, &mut s.y)?;
            for (i, &slot) in s.routed[e].iter().enumerate() {
                let w = s.chosen[slot as usize].1;
                let slot = slot as usize;
                let dst = &mut s.slots[slot * d..(slot + 1) * d];
                for (o, y) in dst.iter_mut().zip(&s.y[i * d..(i + 1) * d]) {
                    *o = y * w;
                }
            }
        }
        Ok(())
    }

    /// A few tokens' experts (decoding): every routed expert's gate and up rows as one parallel
    /// job, then every down row as another, instead of three small matmuls per expert, each
    /// waking the pool. Every (row, token) product is the `vec_dot` the matmul would run for
    /// one token (and its tile kernels equal), on the token's row quantized alone, so the bits
    /// are those of `experts_each`.
    fn experts_fused(
        &self,
        moe: &Moe,
        n_tok: usize,
        k: usize,
        xn: &[f32],
        s: &mut MoeScratch,
        pool: &ThreadPool,
    ) -> Result<()> {
        let d = self.config.n_embd;
        let n_slots = n_tok * k;
        let active: Vec<usize> = (0..s.routed.len())
            .filter(|&e| !s.routed[e].is_empty())
            .collect();
        let (gate0, up0, down0) = (
            self.expert_mat(&moe.gate, 0),
            self.expert_mat(&moe.up, 0),
            self.expert_mat(&moe.down, 0),
        );
        let n_ff = gate0.rows;
        // Each token's row in the gate's and the up's activation types.
        let (g_ty, u_ty) = (activation_type(gate0.ty)?, activation_type(up0.ty)?);
        quantize_activations(g_ty, &xn[..n_tok * d], d, &mut s.xq_gate)?;
        quantize_activations(u_ty, &xn[..n_tok * d], d, &mut s.xq_up)?;
        let (g_rb, u_rb) = (row_bytes(g_ty, d), row_bytes(u_ty, d));
        let units: Vec<Unit> = active
            .iter()
            .flat_map(|&e| {
                let (g, u) = ((Part::Gate, row_group(&gate0)), (Part::Up, row_group(&up0)));
                [g, u].into_iter().flat_map(move |(part, group)| {
                    (0..n_ff).step_by(group).map(move |r0| Unit {
                        e,
                        part,
                        rows: r0..(r0 + group).min(n_ff),
                    })
                })
            })
            .collect();
        let routed = &s.routed;
        self.run_units(pool, &units, routed, &mut s.stage, |u, slot, r| {
            let t = slot / k;
            let (m, x) = match u.part {
                Part::Gate => (
                    self.expert_mat(&moe.gate, u.e),
                    &s.xq_gate[t * g_rb..(t + 1) * g_rb],
                ),
                Part::Up => (
                    self.expert_mat(&moe.up, u.e),
                    &s.xq_up[t * u_rb..(t + 1) * u_rb],
                ),
                Part::Down => unreachable!(),
            };
            vec_dot(m.ty, m.cols, m.row(r), x)
        });
        // Scatter into slot-major gate and up rows: (n_slots, n_ff) each.
        grow(&mut s.gate, n_slots * n_ff);
        grow(&mut s.up, n_slots * n_ff);
        let mut at = 0;
        for u in &units {
            for &slot in &s.routed[u.e] {
                let dst = match u.part {
                    Part::Gate => &mut s.gate,
                    _ => &mut s.up,
                };
                let row = slot as usize * n_ff;
                let n = u.rows.len();
                dst[row + u.rows.start..row + u.rows.end].copy_from_slice(&s.stage[at..at + n]);
                at += n;
            }
        }
        glu(
            self.config.activation,
            &mut s.gate[..n_slots * n_ff],
            &s.up[..n_slots * n_ff],
        );

        let d_ty = activation_type(down0.ty)?;
        quantize_activations(d_ty, &s.gate[..n_slots * n_ff], n_ff, &mut s.xq_down)?;
        let d_rb = row_bytes(d_ty, n_ff);
        let group = row_group(&down0);
        let units: Vec<Unit> = active
            .iter()
            .flat_map(|&e| {
                (0..d).step_by(group).map(move |r0| Unit {
                    e,
                    part: Part::Down,
                    rows: r0..(r0 + group).min(d),
                })
            })
            .collect();
        self.run_units(pool, &units, routed, &mut s.stage, |u, slot, r| {
            let m = self.expert_mat(&moe.down, u.e);
            vec_dot(
                m.ty,
                m.cols,
                m.row(r),
                &s.xq_down[slot * d_rb..(slot + 1) * d_rb],
            )
        });
        let mut at = 0;
        for u in &units {
            for &slot in &s.routed[u.e] {
                let slot = slot as usize;
                let w = s.chosen[slot].1;
                let dst = &mut s.slots[slot * d + u.rows.start..slot * d + u.rows.end];
                for (o, y) in dst.iter_mut().zip(&s.stage[at..at + u.rows.len()]) {
                    *o = y * w;
                }
                at += u.rows.len();
            }
        }
        Ok(())
    }

    /// Runs `dot(unit, slot, row)` for every unit's rows and every slot routed to its expert,
    /// the units split across threads, into `stage` unit by unit (slot-major within a unit).
    fn run_units<F>(
        &self,
        pool: &ThreadPool,
        units: &[Unit],
        routed: &[Vec<u32>],
        stage: &mut Vec<f32>,
        dot: F,
    ) where
        F: Fn(&Unit, usize, usize) -> f32 + Sync,
    {
        let sizes: Vec<usize> = units
            .iter()
            .map(|u| u.rows.len() * routed[u.e].len())
            .collect();
        let total: usize = sizes.iter().sum();
        if stage.len() < total {
            stage.resize(total, 0.0);
        }
        let n_chunks = (pool.n_threads() * 4).min(units.len()).max(1);
        // Chunk c takes units [c·U/n, (c+1)·U/n): contiguous in `stage`, so each chunk gets its
        // own slice of it.
        let mut rest = &mut stage[..total];
        let mut outs = Vec::with_capacity(n_chunks);
        for c in 0..n_chunks {
            let (u0, u1) = (c * units.len() / n_chunks, (c + 1) * units.len() / n_chunks);
            let len: usize = sizes[u0..u1].iter().sum();
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
            outs.push(Mutex::new(head));
            rest = tail;
        }
        pool.run_chunks(n_chunks, |_, c| {
            let (u0, u1) = (c * units.len() / n_chunks, (c + 1) * units.len() / n_chunks);
            let mut out = outs[c].lock().unwrap_or_else(|e| e.into_inner());
            let mut at = 0;
            for u in &units[u0..u1] {
                for &slot in &routed[u.e] {
                    for r in u.rows.clone() {
                        out[at] = dot(u, slot as usize, r);
                        at += 1;
                    }
                }
            }
        });
    }

    /// `tmp += sigmoid(gate_inp · x) · down · (silu(gate · x) ⊙ (up · x))`, token by token.
    fn shared_expert(
        &self,
        sh: &Shared,
        n_tok: usize,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<()> {
        let c = &self.config;
        let d = c.n_embd;
        let s = &mut ws.moe;
        let n_ff = sh.gate.rows;
        grow(&mut s.gate, n_tok * n_ff);
        grow(&mut s.up, n_tok * n_ff);
        grow(&mut s.y, n_tok * d);
        grow(&mut s.shared_gate, n_tok);
        s.act.invalidate();
        let m = |w: &Weight| self.mat(w);
        self.project_mat(
            pool,
            &m(&sh.gate_inp),
            &mut s.act,
            &ws.xn,
            n_tok,
            &mut s.shared_gate,
        )?;
        self.project_mat(pool, &m(&sh.gate), &mut s.act, &ws.xn, n_tok, &mut s.gate)?;
        self.project_mat(pool, &m(&sh.up), &mut s.act, &ws.xn, n_tok, &mut s.up)?;
        glu(
            c.activation,
            &mut s.gate[..n_tok * n_ff],
            &s.up[..n_tok * n_ff],
        );
        s.act.invalidate();
        self.project_mat(pool, &m(&sh.down), &mut s.act, &s.gate, n_tok, &mut s.y)?;
        for t in 0..n_tok {
            let g = sigmoid(s.shared_gate[t]);
            let out = &mut ws.tmp[t * d..(t + 1) * d];
            for (o, y) in out.iter_mut().zip(&s.y[t * d..(t + 1) * d]) {
                *o += y * g;
            }
        }
        Ok(())
    }

    /// Expert `e` of a 3-D tensor, row-major in the mapped file.
    fn expert_mat(&self, w: &ExpertMatrices, e: usize) -> QMatrix<'_> {
        let data = self.gguf.tensor_data(&self.gguf.tensors()[w.index]);
        let len = w.rows * hearth_kernels::row_bytes(w.ty, w.cols);
        QMatrix {
            ty: w.ty,
            data: &data[e * len..(e + 1) * len],
            rows: w.rows,
            cols: w.cols,
            packed: false,
        }
    }
}

/// Tokens up to which a layer's experts run fused ([`Model::experts_fused`]).
const FUSED_MAX_TOKENS: usize = 4;

/// Which of an expert's matrices a unit of fused work multiplies.
#[derive(Clone, Copy)]
enum Part {
    Gate,
    Up,
    Down,
}

/// A unit of fused work: rows of one expert's matrix, for every slot routed to the expert.
struct Unit {
    e: usize,
    part: Part,
    rows: std::ops::Range<usize>,
}

/// Rows of a matrix a unit takes: about 16 KB of weights, as the matmul's groups.
fn row_group(m: &QMatrix<'_>) -> usize {
    (16 * 1024 / m.row_bytes().max(1)).clamp(4, 64)
}

fn glu(act: Activation, gate: &mut [f32], up: &[f32]) {
    match act {
        Activation::Silu => ops::swiglu(gate, up),
        Activation::GeluTanh => ops::geglu(gate, up),
    }
}

/// In place, as ggml's CPU softmax: the largest logit subtracted, the sum in f64, one scale.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in row.iter_mut() {
        *v = hearth_kernels::exp_f32(*v - max);
        sum += f64::from(*v);
    }
    let scale = (1.0 / sum) as f32;
    row.iter_mut().for_each(|v| *v *= scale);
}

/// Appends the `k` most probable experts, best first (ties: the lower index), with their
/// probabilities, divided by their sum when `norm` (the sum kept above f16's smallest normal
/// number, as llama.cpp clamps it).
fn top_k(probs: &[f32], k: usize, norm: bool, out: &mut Vec<(u32, f32)>) {
    let start = out.len();
    for _ in 0..k {
        let mut best: Option<usize> = None;
        for (e, &p) in probs.iter().enumerate() {
            if out[start..].iter().any(|&(c, _)| c as usize == e) {
                continue;
            }
            if best.is_none_or(|b| p > probs[b]) {
                best = Some(e);
            }
        }
        let e = best.unwrap_or(0);
        out.push((e as u32, probs[e]));
    }
    if norm {
        let sum: f32 = out[start..].iter().map(|&(_, w)| w).sum();
        let sum = sum.max(6.103_515_6e-5);
        out[start..].iter_mut().for_each(|(_, w)| *w /= sum);
    }
}

/// llama.cpp gates Qwen2-MoE's shared expert with `silu(x) / x`, which is NaN at 0 and rounds
/// differently in the last bits; this is the plain logistic function, on purpose.
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + hearth_kernels::exp_f32(-x))
}
