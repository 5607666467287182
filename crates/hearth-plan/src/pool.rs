//! The household plan: one model over several machines, as pure functions.
//!
//! Two ways to use a pool:
//!
//! - **Route**: the model fits one machine, so whole requests go to the least-loaded machine
//!   that holds it (and several users spread over every machine that does).
//! - **Split**: a pipeline of contiguous layer ranges, one per machine, chosen to minimise the
//!   slowest stage while each machine holds its layers' weights, their KV cache and its scratch;
//!   machines that would slow the pipeline down are left out.
//!
//! Speeds follow the single-machine plan's model: a generation step reads its weights and its
//! users' KV once, and multiplies two FLOP per parameter per chat, so its time is the longer of
//! bytes over bandwidth and FLOP over arithmetic (each times the same efficiency); a split adds,
//! per hop, half a round trip and the hidden state's bytes over the link, plus the way back to
//! the head. One chat goes through every stage in turn, so a split never makes one chat faster
//! than the fastest stage machine alone would be with all layers; it is for models that fit no
//! single machine, and for keeping several chats in flight (each stage works on another
//! micro-batch). The plan says so in words when pooling is slower than the best single machine.

use std::ops::Range;

use hearth_gguf::Header;

use crate::{compute_bytes, kv_bytes, kv_read_bytes, Error, ModelFacts, Request, Result};

/// A model as the pool plan sees it: per-layer weights and KV, and what lies outside layers.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolModel {
    /// Stored bytes of each layer's tensors (`blk.N.*`): what the stage holding it needs, every
    /// expert of a mixture of experts included.
    pub layer_bytes: Vec<u64>,
    /// Bytes of each layer a step reads: all of a dense layer, and of a mixture of experts'
    /// expert tensors only the share a token is routed to (`expert_used_count/expert_count`).
    pub layer_read_bytes: Vec<u64>,
    /// Parameters of each layer a token uses, the routed share of experts (two FLOP each).
    pub layer_params: Vec<u64>,
    /// Parameters of the output head (the last stage's).
    pub output_params: u64,
    /// KV bytes each layer reserves for the request's users and context.
    pub layer_kv_bytes: Vec<u64>,
    /// KV bytes each layer reads per user per step (at the full context).
    pub layer_kv_read_bytes: Vec<u64>,
    /// The embedding table: held by the first stage (and the last when the output reuses it).
    pub embed_bytes: u64,
    /// What the first stage reads of it per token (one row).
    pub embed_read_bytes: u64,
    /// The output head and final norm (the embedding table when tied): held and read by the
    /// last stage every step.
    pub output_bytes: u64,
    /// One token's hidden state crossing a hop (f32).
    pub hidden_bytes: u64,
    /// Scratch of the forward pass on each machine.
    pub compute_bytes: u64,
    /// Runtime tables and the mapped header, on every machine.
    pub fixed_bytes: u64,
    /// Share of a machine's bandwidth a generation step achieves (the request's).
    pub tg_efficiency: f64,
    /// Share of a machine's FLOP/s a batch achieves (the request's).
    pub pp_efficiency: f64,
}

impl PoolModel {
    /// From a model's header, for `req`'s users and context.
    pub fn from_header(header: &Header, facts: &ModelFacts, req: &Request) -> Result<PoolModel> {
        let cfg = &facts.config;
        let n = cfg.n_layer;
        if n == 0 {
            return Err(Error::MissingTensor { name: "blk.0" });
        }
        let mut layer_bytes = vec![0u64; n];
        let mut layer_read_bytes = vec![0u64; n];
        let mut layer_params = vec![0u64; n];
        // The routed share, by the same rule as `ModelFacts::from_header`.
        let routed = |v: u64| match &cfg.experts {
            Some(x) => (v as f64 * x.active_fraction()).round() as u64,
            None => v,
        };
        let (mut embed, mut other, mut embed_params, mut other_params) = (0u64, 0u64, 0u64, 0u64);
        let mut tied = true;
        for t in &header.tensors {
            let bytes = t.ty.bytes_for(t.n_elements()).unwrap_or(t.n_bytes);
            let layer = t
                .name
                .strip_prefix("blk.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|i| i.parse::<usize>().ok());
            match layer {
                Some(i) if i < n => {
                    layer_bytes[i] += bytes;
                    if cfg.experts.is_some() && t.name.contains("_exps.") {
                        layer_read_bytes[i] += routed(bytes);
                        layer_params[i] += routed(t.n_elements());
                    } else {
                        layer_read_bytes[i] += bytes;
                        layer_params[i] += t.n_elements();
                    }
                }
                _ if t.name == "token_embd.weight" => {
                    embed += bytes;
                    embed_params += t.n_elements();
                }
                _ => {
                    if t.name == "output.weight" {
                        tied = false;
                    }
                    other += bytes;
                    other_params += t.n_elements();
                }
            }
        }
        let rows = header
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .unwrap_or(1)
            .max(1);
        let kv_all = kv_bytes(cfg, req.ctx, req.users, req.chunk, req.kv_type);
        let kv_read_all = kv_read_bytes(cfg, req.ctx, req.kv_type);
        Ok(PoolModel {
            layer_bytes,
            layer_read_bytes,
            layer_params,
            output_params: other_params + if tied { embed_params } else { 0 },
            layer_kv_bytes: split_even(kv_all, n),
            layer_kv_read_bytes: split_even(kv_read_all, n),
            embed_bytes: embed,
            embed_read_bytes: embed / rows,
            output_bytes: other + if tied { embed } else { 0 },
            hidden_bytes: 4 * cfg.n_embd as u64,
            compute_bytes: compute_bytes(
                cfg,
                req.ctx,
                req.users,
                req.chunk,
                req.batch,
                req.threads,
            ),
            fixed_bytes: facts.text_bytes + crate::RUNTIME_BYTES,
            tg_efficiency: req.tg_efficiency,
            pp_efficiency: req.pp_efficiency,
        })
    }

    pub fn n_layer(&self) -> usize {
        self.layer_bytes.len()
    }

    /// Memory a stage holding `layers` needs, first and/or last.
    pub fn stage_bytes(&self, layers: Range<usize>, first: bool, last: bool) -> u64 {
        let l: u64 = layers
            .clone()
            .map(|i| self.layer_bytes[i] + self.layer_kv_bytes[i])
            .sum();
        l + if first { self.embed_bytes } else { 0 }
            + if last { self.output_bytes } else { 0 }
            + self.compute_bytes
            + self.fixed_bytes
    }

    /// Seconds one step of a stage takes on `m` for `users` chats at once: reading its weights
    /// and the chats' KV (bandwidth), or multiplying, two FLOP per parameter per chat (compute),
    /// whichever is longer.
    fn stage_step(
        &self,
        layers: Range<usize>,
        first: bool,
        last: bool,
        users: usize,
        m: &PoolMachine,
    ) -> f64 {
        let read = self.stage_read(layers.clone(), first, last, users) as f64;
        let params: u64 = layers.map(|i| self.layer_params[i]).sum::<u64>()
            + if last { self.output_params } else { 0 };
        let flops = 2.0 * params as f64 * users as f64;
        let memory = read / (m.bandwidth_bytes_per_s * self.tg_efficiency).max(1.0);
        let compute = flops / (m.flops_per_s * self.pp_efficiency).max(1.0);
        memory.max(compute)
    }

    /// Bytes a stage reads per step for `users` users.
    fn stage_read(&self, layers: Range<usize>, first: bool, last: bool, users: usize) -> u64 {
        let w: u64 = layers.clone().map(|i| self.layer_read_bytes[i]).sum();
        let kv: u64 = layers.map(|i| self.layer_kv_read_bytes[i]).sum();
        w + users as u64 * kv
            + if first {
                users as u64 * self.embed_read_bytes
            } else {
                0
            }
            + if last { self.output_bytes } else { 0 }
    }
}

fn split_even(total: u64, n: usize) -> Vec<u64> {
    let base = total / n as u64;
    let rest = (total % n as u64) as usize;
    (0..n).map(|i| base + u64::from(i < rest)).collect()
}

/// One machine of the pool as the plan sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolMachine {
    pub name: String,
    /// Memory free for a model.
    pub usable_bytes: u64,
    /// Read bandwidth, bytes per second.
    pub bandwidth_bytes_per_s: f64,
    /// Arithmetic, FLOP per second.
    pub flops_per_s: f64,
    /// Its link to the head: round trip in seconds (0 for the head itself).
    pub rtt_s: f64,
    /// Its link to the head: bytes per second (infinite for the head itself).
    pub link_bytes_per_s: f64,
    /// Chats it is generating now (for routing to the least loaded).
    pub busy: usize,
}

/// A stage of a split: a machine and its contiguous layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Index into the machines given.
    pub machine: usize,
    pub layers: Range<usize>,
    /// Seconds per step for one chat.
    pub step_s: f64,
    pub bytes: u64,
}

/// What one mode would give.
#[derive(Clone, Debug, PartialEq)]
pub struct Speed {
    /// Tokens per second of one chat alone.
    pub single_tok_s: f64,
    /// Tokens per second of all the plan's users together.
    pub aggregate_tok_s: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RoutePlan {
    /// Machines that hold the model whole, best first by predicted speed.
    pub machines: Vec<usize>,
    /// Where the next request goes: the least loaded of them.
    pub next: usize,
    pub speed: Speed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SplitPlan {
    pub stages: Vec<Stage>,
    /// Machines left out because they would slow the pipeline (or hold nothing useful).
    pub left_out: Vec<usize>,
    pub speed: Speed,
}

/// The household plan for one model and a number of users.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolPlan {
    pub users: usize,
    pub route: Option<RoutePlan>,
    pub split: Option<SplitPlan>,
    /// The fastest single machine that holds the model, and its speed.
    pub best_single: Option<(usize, Speed)>,
    /// What to do.
    pub choice: Choice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Route,
    Split,
    /// Fits nowhere, not even split.
    Nothing,
}

/// One machine holding everything: its speed for `users` chats, or `None` if it does not fit.
pub fn single(model: &PoolModel, m: &PoolMachine, users: usize) -> Option<Speed> {
    let n = model.n_layer();
    if model.stage_bytes(0..n, true, true) > m.usable_bytes {
        return None;
    }
    let one = model.stage_step(0..n, true, true, 1, m);
    let all = model.stage_step(0..n, true, true, users.max(1), m);
    Some(Speed {
        single_tok_s: 1.0 / one,
        aggregate_tok_s: users.max(1) as f64 / all,
    })
}

/// Route mode: every machine that holds the model whole; requests go to the least loaded. Users
/// spread one at a time to the machine where they finish soonest, so the aggregate counts every
/// machine that helps.
pub fn route(model: &PoolModel, machines: &[PoolMachine], users: usize) -> Option<RoutePlan> {
    let mut fit: Vec<(usize, f64)> = machines
        .iter()
        .enumerate()
        .filter_map(|(i, m)| single(model, m, 1).map(|s| (i, s.single_tok_s)))
        .collect();
    if fit.is_empty() {
        return None;
    }
    fit.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let n = model.n_layer();
    // Step time of machine i with u users.
    let step = |i: usize, u: usize| model.stage_step(0..n, true, true, u, &machines[i]);
    // The next request: the machine whose chats (its own and this one) step fastest.
    let next = fit
        .iter()
        .map(|&(i, _)| i)
        .min_by(|&a, &b| {
            let ta = step(a, machines[a].busy + 1);
            let tb = step(b, machines[b].busy + 1);
            ta.total_cmp(&tb).then(a.cmp(&b))
        })
        .expect("not empty");
    let mut load = vec![0usize; machines.len()];
    for _ in 0..users.max(1) {
        let i = fit
            .iter()
            .map(|&(i, _)| i)
            .min_by(|&a, &b| {
                // Finish soonest: its chats' step time with one more, per chat it serves.
                let ta = step(a, load[a] + 1);
                let tb = step(b, load[b] + 1);
                ta.total_cmp(&tb).then(a.cmp(&b))
            })
            .expect("not empty");
        load[i] += 1;
    }
    let aggregate = fit
        .iter()
        .filter(|&&(i, _)| load[i] > 0)
        .map(|&(i, _)| load[i] as f64 / step(i, load[i]))
        .sum();
    Some(RoutePlan {
        machines: fit.iter().map(|&(i, _)| i).collect(),
        next,
        speed: Speed {
            single_tok_s: fit[0].1,
            aggregate_tok_s: aggregate,
        },
    })
}

/// The split of `n` layers over `order` (machine indices, in pipeline order) that minimises the
/// slowest stage for `users` chats in flight, each machine holding what its stage needs.
/// `None` when they cannot hold the model between them (or there are more machines than layers).
pub fn split_over(
    model: &PoolModel,
    machines: &[PoolMachine],
    order: &[usize],
    users: usize,
) -> Option<Vec<Stage>> {
    let n = model.n_layer();
    let k = order.len();
    if k == 0 || k > n {
        return None;
    }
    // Chats in flight per stage: each stage works on its own micro-batch.
    let batch = users.max(1).div_ceil(k);
    let cost = |j: usize, layers: Range<usize>| -> Option<f64> {
        let m = &machines[order[j]];
        let (first, last) = (j == 0, j == k - 1);
        if model.stage_bytes(layers.clone(), first, last) > m.usable_bytes {
            return None;
        }
        let compute = model.stage_step(layers, first, last, batch, m);
        // Receiving the hidden states of the micro-batch over this machine's link.
        let hop = if first {
            0.0
        } else {
            m.rtt_s / 2.0 + (batch as u64 * model.hidden_bytes) as f64 / m.link_bytes_per_s
        };
        Some(compute + hop)
    };
    // best[j][l]: the smallest slowest stage of machines 0..j holding layers 0..l.
    let inf = f64::INFINITY;
    let mut best = vec![vec![inf; n + 1]; k + 1];
    let mut from = vec![vec![0usize; n + 1]; k + 1];
    best[0][0] = 0.0;
    for j in 0..k {
        for start in 0..n {
            if best[j][start] == inf {
                continue;
            }
            // Every stage holds at least one layer; leave at least one for each later stage.
            for end in start + 1..=n - (k - 1 - j) {
                let Some(c) = cost(j, start..end) else {
                    // More layers only need more memory.
                    break;
                };
                let worst = best[j][start].max(c);
                if worst < best[j + 1][end] {
                    best[j + 1][end] = worst;
                    from[j + 1][end] = start;
                }
            }
        }
    }
    if best[k][n] == inf {
        return None;
    }
    let mut stages = Vec::with_capacity(k);
    let mut end = n;
    for j in (1..=k).rev() {
        let start = from[j][end];
        let (first, last) = (j == 1, j == k);
        let m = &machines[order[j - 1]];
        let hop = if first {
            0.0
        } else {
            m.rtt_s / 2.0 + model.hidden_bytes as f64 / m.link_bytes_per_s
        };
        stages.push(Stage {
            machine: order[j - 1],
            layers: start..end,
            step_s: model.stage_step(start..end, first, last, 1, m) + hop,
            bytes: model.stage_bytes(start..end, first, last),
        });
        end = start;
    }
    stages.reverse();
    Some(stages)
}

/// The speed of a pipeline: one chat passes every stage (and the way back to the head) in turn;
/// several keep up to one micro-batch in each stage.
fn pipeline_speed(
    model: &PoolModel,
    machines: &[PoolMachine],
    stages: &[Stage],
    users: usize,
) -> Speed {
    let k = stages.len();
    let back = machines[stages[k - 1].machine].rtt_s / 2.0;
    let one: f64 = stages.iter().map(|s| s.step_s).sum::<f64>() + back;
    let users = users.max(1);
    let batch = users.div_ceil(k);
    let stage_time = |s: &Stage, j: usize| {
        let m = &machines[s.machine];
        let step = model.stage_step(s.layers.clone(), j == 0, j == k - 1, batch, m);
        let hop = if j == 0 {
            0.0
        } else {
            m.rtt_s / 2.0 + (batch as u64 * model.hidden_bytes) as f64 / m.link_bytes_per_s
        };
        step + hop
    };
    let times: Vec<f64> = stages
        .iter()
        .enumerate()
        .map(|(j, s)| stage_time(s, j))
        .collect();
    let round = times.iter().sum::<f64>() + back;
    let slowest = times.iter().copied().fold(0.0, f64::max);
    // A micro-batch goes round once per token; the pipeline holds min(users, k) of them, and can
    // not turn faster than its slowest stage allows.
    let in_flight = users.min(k) as f64;
    let cycle = round.max(in_flight * slowest);
    let per_round = batch as f64 * in_flight;
    Speed {
        single_tok_s: 1.0 / one,
        aggregate_tok_s: per_round.min(users as f64) / cycle,
    }
}

/// The best split: every subset of at least two machines (in the order given, the head
/// first), each split to minimise its slowest stage; the one with the best speed for `users`
/// chats wins, so a machine that would slow it down is left out.
pub fn split(model: &PoolModel, machines: &[PoolMachine], users: usize) -> Option<SplitPlan> {
    let m = machines.len().min(12);
    let mut best: Option<SplitPlan> = None;
    for mask in 1u32..(1 << m) {
        if mask.count_ones() < 2 {
            continue;
        }
        let order: Vec<usize> = (0..m).filter(|i| mask & (1 << i) != 0).collect();
        let Some(stages) = split_over(model, machines, &order, users) else {
            continue;
        };
        let speed = pipeline_speed(model, machines, &stages, users);
        let better = best.as_ref().is_none_or(|b| {
            (speed.aggregate_tok_s, speed.single_tok_s)
                > (b.speed.aggregate_tok_s, b.speed.single_tok_s)
        });
        if better {
            best = Some(SplitPlan {
                left_out: (0..machines.len()).filter(|i| !order.contains(i)).collect(),
                stages,
                speed,
            });
        }
    }
    best
}

/// The household plan: route when one machine holds the model (unless a split is faster for
/// these users), split when none does, nothing when even the whole pool cannot.
pub fn pool_plan(model: &PoolModel, machines: &[PoolMachine], users: usize) -> PoolPlan {
    let best_single = machines
        .iter()
        .enumerate()
        .filter_map(|(i, m)| single(model, m, users).map(|s| (i, s)))
        .max_by(|a, b| {
            a.1.aggregate_tok_s
                .total_cmp(&b.1.aggregate_tok_s)
                .then(b.0.cmp(&a.0))
        });
    let route = route(model, machines, users);
    let split = split(model, machines, users);
    let choice = match (&route, &split) {
        (Some(r), Some(s)) if s.speed.aggregate_tok_s > r.speed.aggregate_tok_s => Choice::Split,
        (Some(_), _) => Choice::Route,
        (None, Some(_)) => Choice::Split,
        (None, None) => Choice::Nothing,
    };
    PoolPlan {
        users,
        route,
        split,
        best_single,
        choice,
    }
}

fn tok(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The plan in words, one line each.
pub fn describe(plan: &PoolPlan, machines: &[PoolMachine]) -> Vec<String> {
    let name = |i: usize| machines[i].name.as_str();
    let users = plan.users.max(1);
    let chats = if users == 1 {
        "1 chat".to_string()
    } else {
        format!("{users} chats")
    };
    let mut out = Vec::new();
    match &plan.route {
        Some(r) => {
            let holders: Vec<&str> = r.machines.iter().map(|&i| name(i)).collect();
            out.push(format!(
                "Route: {} whole; the next chat goes to {} (the least busy). About {} tokens/s \
                 for one chat, {} in all for {chats}.",
                if holders.len() == 1 {
                    format!("{} holds the model", holders[0])
                } else {
                    format!("{} each hold the model", holders.join(", "))
                },
                name(r.next),
                tok(r.speed.single_tok_s),
                tok(r.speed.aggregate_tok_s)
            ));
        }
        None => out.push("Route: no single machine holds this model.".into()),
    }
    match &plan.split {
        Some(s) => {
            let stages: Vec<String> = s
                .stages
                .iter()
                .map(|st| {
                    format!(
                        "{} layers {}-{}",
                        name(st.machine),
                        st.layers.start,
                        st.layers.end - 1
                    )
                })
                .collect();
            out.push(format!(
                "Split: {}. About {} tokens/s for one chat, {} in all for {chats}.",
                stages.join(", "),
                tok(s.speed.single_tok_s),
                tok(s.speed.aggregate_tok_s)
            ));
            if !s.left_out.is_empty() {
                let names: Vec<&str> = s.left_out.iter().map(|&i| name(i)).collect();
                out.push(format!(
                    "Left out of the split: {} (it would slow the pipeline or cannot hold a part).",
                    names.join(", ")
                ));
            }
        }
        None if machines.len() < 2 => out.push("Split: needs at least two machines.".into()),
        None => out.push("Split: the machines cannot hold this model between them.".into()),
    }
    if let (Some((i, single)), Some(s)) = (&plan.best_single, &plan.split) {
        if s.speed.aggregate_tok_s <= single.aggregate_tok_s {
            out.push(format!(
                "Pooling is slower than {} alone ({} vs {} tokens/s for {chats}): a split does \
                 not pay for this model; serve it on {}.",
                name(*i),
                tok(s.speed.aggregate_tok_s),
                tok(single.aggregate_tok_s),
                name(*i)
            ));
        }
    }
    out.push(match plan.choice {
        Choice::Route => "Plan: route whole chats.".into(),
        Choice::Split => "Plan: split the model across the machines above.".into(),
        Choice::Nothing => "Plan: this model does not fit the pool, not even split.".into(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    /// A 7B-like model: 32 layers of 0.2 GiB (200M parameters each), 0.25 GiB of embedding and
    /// 0.25 of output.
    fn model() -> PoolModel {
        PoolModel {
            layer_bytes: vec![G / 5; 32],
            layer_read_bytes: vec![G / 5; 32],
            layer_params: vec![200_000_000; 32],
            output_params: 130_000_000,
            layer_kv_bytes: vec![G / 64; 32],
            layer_kv_read_bytes: vec![1 << 20; 32],
            embed_bytes: G / 4,
            embed_read_bytes: 8 << 10,
            output_bytes: G / 4,
            hidden_bytes: 4 * 4096,
            compute_bytes: G / 8,
            fixed_bytes: G / 16,
            tg_efficiency: 1.0,
            pp_efficiency: 1.0,
        }
    }

    fn machine(name: &str, mem_gib: f64, bw_gb: f64) -> PoolMachine {
        PoolMachine {
            name: name.into(),
            usable_bytes: (mem_gib * G as f64) as u64,
            bandwidth_bytes_per_s: bw_gb * 1e9,
            // A few cores: eight chats at once are bound by arithmetic, as on a real CPU.
            flops_per_s: 2e11,
            rtt_s: 0.001,
            link_bytes_per_s: 125e6,
            busy: 0,
        }
    }

    #[test]
    fn a_model_that_fits_is_routed_to_the_least_busy_holder() {
        let mut ms = vec![machine("desk", 16.0, 60.0), machine("mini", 16.0, 60.0)];
        ms[0].busy = 3;
        let p = pool_plan(&model(), &ms, 1);
        assert_eq!(p.choice, Choice::Route);
        let r = p.route.unwrap();
        assert_eq!(r.next, 1);
        assert_eq!(r.machines.len(), 2);
        // One chat: as fast as one machine; two machines roughly double eight chats.
        let one = single(&model(), &ms[0], 8).unwrap();
        let eight = route(&model(), &ms, 8).unwrap();
        assert!(eight.speed.aggregate_tok_s > 1.9 * one.aggregate_tok_s);
    }

    #[test]
    fn a_model_too_big_for_each_is_split_by_memory_and_speed() {
        // 7 GiB of layers: neither 5 GiB machine holds it, together they do.
        let ms = vec![machine("desk", 5.0, 60.0), machine("mini", 5.0, 30.0)];
        let p = pool_plan(&model(), &ms, 1);
        assert!(p.route.is_none());
        assert!(p.best_single.is_none());
        assert_eq!(p.choice, Choice::Split);
        let s = p.split.unwrap();
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.stages[0].layers.start, 0);
        assert_eq!(s.stages[0].layers.end, s.stages[1].layers.start);
        assert_eq!(s.stages[1].layers.end, 32);
        for st in &s.stages {
            assert!(st.bytes <= ms[st.machine].usable_bytes);
        }
        // The faster machine takes more layers.
        assert!(s.stages[0].layers.len() > s.stages[1].layers.len());
    }

    #[test]
    fn the_split_minimises_the_slowest_stage() {
        let m = model();
        let ms = vec![machine("a", 64.0, 40.0), machine("b", 64.0, 40.0)];
        let stages = split_over(&m, &ms, &[0, 1], 1).unwrap();
        let worst = stages.iter().map(|s| s.step_s).fold(0.0, f64::max);
        // Every other cut point is no better.
        for cut in 1..32 {
            let a = m.stage_step(0..cut, true, false, 1, &ms[0]);
            let b = m.stage_step(cut..32, false, true, 1, &ms[1])
                + ms[1].rtt_s / 2.0
                + m.hidden_bytes as f64 / ms[1].link_bytes_per_s;
            assert!(
                a.max(b) >= worst - 1e-12,
                "cut {cut}: {} < {worst}",
                a.max(b)
            );
        }
    }

    #[test]
    fn a_slow_machine_is_left_out() {
        // Two fast machines hold it between them; a slow third only slows the pipeline.
        let ms = vec![
            machine("desk", 5.0, 60.0),
            machine("mini", 5.0, 60.0),
            machine("old laptop", 5.0, 3.0),
        ];
        let s = split(&model(), &ms, 1).unwrap();
        assert_eq!(s.left_out, vec![2]);
    }

    #[test]
    fn the_plan_says_when_pooling_is_slower() {
        // exo#489's case: a fast machine and a slower one; the model fits the fast one.
        let ms = vec![machine("mac", 32.0, 400.0), machine("mini", 32.0, 100.0)];
        let p = pool_plan(&model(), &ms, 1);
        assert_eq!(p.choice, Choice::Route);
        let words = describe(&p, &ms).join("\n");
        assert!(
            words.contains("Pooling is slower than mac alone"),
            "{words}"
        );
        let s = p.split.unwrap();
        let (_, one) = p.best_single.unwrap();
        assert!(s.speed.single_tok_s < one.single_tok_s);
    }

    #[test]
    fn nothing_fits_says_so() {
        let ms = vec![machine("a", 2.0, 60.0), machine("b", 2.0, 60.0)];
        let p = pool_plan(&model(), &ms, 1);
        assert_eq!(p.choice, Choice::Nothing);
        let words = describe(&p, &ms).join("\n");
        assert!(words.contains("does not fit the pool"), "{words}");
    }

    #[test]
    fn several_chats_keep_a_pipeline_busy() {
        let ms = vec![machine("a", 5.0, 60.0), machine("b", 5.0, 60.0)];
        let one = split(&model(), &ms, 1).unwrap();
        let eight = split(&model(), &ms, 8).unwrap();
        assert!(eight.speed.aggregate_tok_s > 1.5 * one.speed.aggregate_tok_s);
    }
}
