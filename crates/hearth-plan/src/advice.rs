//! Plans beyond the one machine asked about: which profiles a model fits when this one does
//! not, each NVIDIA GPU of this machine, and `hearth plan --recommend`'s list of what fits,
//! best first.
//!
//! Like the rest of the crate these are pure functions: the caller reads the headers, runs
//! `nvidia-smi` and measures the machine, and passes what it found.

use hearth_gguf::Header;
use serde::Serialize;

use crate::{
    plan, weights_at, DetectedGpu, Kind, Machine, ModelFacts, Plan, Profiles, Request, Result,
    DEFAULT_PP_EFFICIENCY, DEFAULT_TG_EFFICIENCY, QUANT_PRESETS, RUNTIME_BYTES,
};

/// The smallest profile of each kind on which the request fits as asked, as advice; `None`
/// when it fits none.
pub fn other_profiles(
    facts: &ModelFacts,
    req: &Request,
    profiles: &Profiles,
) -> Result<Option<String>> {
    let mut picks = Vec::new();
    for kind in [Kind::Cpu, Kind::Unified, Kind::Gpu] {
        let mut best: Option<&Machine> = None;
        for m in profiles.iter().filter(|m| m.kind == kind) {
            let fits = plan(facts, m, req)?.fits;
            if fits && best.is_none_or(|b| m.usable_bytes() < b.usable_bytes()) {
                best = Some(m);
            }
        }
        picks.extend(best.map(|m| m.name.clone()));
    }
    Ok((!picks.is_empty()).then(|| {
        format!(
            "as asked it fits on these profiles (smallest of each kind): {}",
            picks.join(", ")
        )
    }))
}

/// A GPU of this machine and the plan for it.
#[derive(Clone, Debug, Serialize)]
pub struct GpuPlan {
    pub gpu: DetectedGpu,
    /// The profile its speed figures come from, when one matches its name.
    pub profile: Option<String>,
    pub plan: Plan,
}

/// Plans the request on each GPU, as a GPU engine would run it (with the default efficiencies,
/// not this machine's CPU calibration), and notes that the speeds are estimates for a GPU
/// engine when there is any GPU.
pub fn gpu_plans(
    gpus: Vec<DetectedGpu>,
    facts: &ModelFacts,
    req: &Request,
    profiles: &Profiles,
    notes: &mut Vec<String>,
) -> Result<Vec<GpuPlan>> {
    let gpu_req = Request {
        tg_efficiency: DEFAULT_TG_EFFICIENCY,
        pp_efficiency: DEFAULT_PP_EFFICIENCY,
        ..req.clone()
    };
    let mut plans = Vec::new();
    for gpu in gpus {
        let (m, profile) = gpu.machine(profiles);
        let plan = plan(facts, &m, &gpu_req)?;
        plans.push(GpuPlan { gpu, profile, plan });
    }
    if !plans.is_empty() {
        notes.push(
            "Hearth runs on the CPU today: the GPU plans say what fits in their memory, and \
             their speeds are bandwidth estimates for a GPU engine, not Hearth measurements"
                .to_string(),
        );
    }
    Ok(plans)
}

/// One line of `--recommend`.
#[derive(Clone, Debug, Serialize)]
pub struct Pick {
    pub model: String,
    /// The catalog file's own mix (`as in the catalog`) or a llama.cpp preset.
    pub quantization: String,
    /// `catalog` (the file itself), `estimated` (another quantization, from the parameter
    /// count) or `size` (not installed: from the catalog's file size only).
    pub basis: &'static str,
    pub installed: bool,
    pub n_params: u64,
    pub bits_per_weight: f64,
    pub weights_bytes: u64,
    pub total_bytes: u64,
    pub fits: bool,
    pub est_tg_tok_s: f64,
    pub est_pp_tok_s: f64,
    /// Users that fit at the request's context; `None` for a size row, whose context memory
    /// is not known.
    pub max_users_at_ctx: Option<usize>,
}

/// Generation speed below which a pick is listed after the faster ones: slower than reading.
pub const SLOW_TOK_S: f64 = 5.0;

/// The picks of one catalog model whose header was read: its catalog file and the common
/// quantizations of [`QUANT_PRESETS`] (all but the one the file already is), planned for
/// `base` (its context capped at the model's training context) on `machine`. A header that
/// describes no model Hearth can plan is left out, with a note.
pub fn header_picks(
    name: &str,
    installed: bool,
    header: &Header,
    machine: &Machine,
    base: &Request,
    notes: &mut Vec<String>,
) -> Result<Vec<Pick>> {
    let facts = match ModelFacts::from_header(header) {
        Ok(f) => f,
        Err(e) => {
            notes.push(format!("{name} is left out: {e}"));
            return Ok(Vec::new());
        }
    };
    let req = Request {
        ctx: base.ctx.clamp(1, facts.config.ctx_train.max(1)),
        ..base.clone()
    };
    let own_bits = facts.weights_bytes as f64 * 8.0 / facts.n_params.max(1) as f64;
    let mut variants = vec![("as in the catalog".to_string(), "catalog", facts.clone())];
    for (preset, bits) in QUANT_PRESETS {
        // The catalog file already stands for its own mix.
        if (bits / own_bits - 1.0).abs() < 0.05 {
            continue;
        }
        let weights = weights_at(facts.n_params, bits);
        let scale = weights as f64 / facts.weights_bytes.max(1) as f64;
        let mut f = facts.clone();
        f.file_bytes = facts.file_bytes - facts.weights_bytes.min(facts.file_bytes) + weights;
        f.read_bytes_per_token = (facts.read_bytes_per_token as f64 * scale) as u64;
        f.expert_bytes = (facts.expert_bytes as f64 * scale) as u64;
        f.active_expert_bytes = (facts.active_expert_bytes as f64 * scale) as u64;
        f.weights_bytes = weights;
        variants.push((preset.to_string(), "estimated", f));
    }
    let mut picks = Vec::new();
    for (quantization, basis, f) in variants {
        let p = plan(&f, machine, &req)?;
        picks.push(Pick {
            model: name.to_string(),
            quantization,
            basis,
            // Only the catalog file itself is on disk.
            installed: installed && basis == "catalog",
            n_params: f.n_params,
            bits_per_weight: f.weights_bytes as f64 * 8.0 / f.n_params.max(1) as f64,
            weights_bytes: f.weights_bytes,
            total_bytes: p.total_bytes,
            fits: p.fits,
            est_tg_tok_s: p.est_tg_tok_s,
            est_pp_tok_s: p.est_pp_tok_s,
            max_users_at_ctx: Some(p.max_users_at_ctx),
        });
    }
    Ok(picks)
}

/// A catalog model known only by its file size (not installed, fetched through pip): the file
/// is taken as the weights, and context memory is left out, so only a lower bound.
pub fn size_pick(name: &str, size: u64, machine: &Machine, req: &Request) -> Pick {
    let total = size + RUNTIME_BYTES;
    Pick {
        model: name.to_string(),
        quantization: "as in the catalog".to_string(),
        basis: "size",
        installed: false,
        n_params: 0,
        bits_per_weight: 0.0,
        weights_bytes: size,
        total_bytes: total,
        fits: total <= machine.usable_bytes(),
        est_tg_tok_s: machine.bandwidth_bytes_per_s * req.tg_efficiency / size.max(1) as f64,
        est_pp_tok_s: 0.0,
        max_users_at_ctx: None,
    }
}

/// `--recommend`'s answer: the picks that fit, best first.
#[derive(Clone, Debug)]
pub struct Recommendation {
    /// Options planned, fitting or not.
    pub planned: usize,
    /// Those that fit: fast enough to chat before slow, then more parameters, then more bits.
    pub picks: Vec<Pick>,
}

/// Keeps the picks that fit and orders them best first (see [`Recommendation::picks`]), noting
/// what the size-only and estimated rows rest on and, for a GPU, that the speeds are
/// estimates for a GPU engine.
pub fn rank(mut picks: Vec<Pick>, machine: &Machine, notes: &mut Vec<String>) -> Recommendation {
    let planned = picks.len();
    if picks.iter().any(|p| p.basis == "size") {
        notes.push(
            "size rows are catalog models not installed, estimated from their file size: KV cache \
             and compute buffers are not counted until the header is read (hearth pull NAME)"
                .to_string(),
        );
    }
    picks.retain(|p| p.fits);
    picks.sort_by(|x, y| {
        (y.est_tg_tok_s >= SLOW_TOK_S)
            .cmp(&(x.est_tg_tok_s >= SLOW_TOK_S))
            .then(y.n_params.cmp(&x.n_params))
            .then(y.bits_per_weight.total_cmp(&x.bits_per_weight))
    });
    if machine.kind != Kind::Cpu {
        notes.push(
            "Hearth runs on the CPU today: for this GPU the fit is from its memory and the speeds \
             are estimates for a GPU engine, not Hearth measurements"
                .to_string(),
        );
    }
    notes.push(
        "estimated rows are other quantizations of a catalog model, sized from its parameter \
         count × the preset's average bits per weight; they are not in the catalog"
            .to_string(),
    );
    Recommendation { planned, picks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(model: &str, n_params: u64, bits: f64, tg: f64, fits: bool) -> Pick {
        Pick {
            model: model.to_string(),
            quantization: "as in the catalog".to_string(),
            basis: "catalog",
            installed: false,
            n_params,
            bits_per_weight: bits,
            weights_bytes: 0,
            total_bytes: 0,
            fits,
            est_tg_tok_s: tg,
            est_pp_tok_s: 0.0,
            max_users_at_ctx: None,
        }
    }

    #[test]
    fn ranking_keeps_what_fits_chat_speed_first_then_more_parameters_then_more_bits() {
        let machine = Machine::custom(16 << 30, 100e9, 1e12);
        let picks = vec![
            pick("slow-big", 70, 4.9, 1.0, true),
            pick("fast-small-q4", 1, 4.9, 50.0, true),
            pick("too-big", 400, 4.9, 50.0, false),
            pick("fast-small-q8", 1, 8.5, 30.0, true),
            pick("fast-mid", 8, 4.9, SLOW_TOK_S, true),
        ];
        let mut notes = Vec::new();
        let r = rank(picks, &machine, &mut notes);
        assert_eq!(r.planned, 5);
        let order: Vec<&str> = r.picks.iter().map(|p| p.model.as_str()).collect();
        assert_eq!(
            order,
            ["fast-mid", "fast-small-q8", "fast-small-q4", "slow-big"]
        );
        // No size rows and a CPU: only the note on estimated rows.
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn a_header_that_is_no_model_is_left_out_with_a_note() {
        let header = Header::parse(&hearth_model::testing::TinySpec::new("llama").build())
            .expect("tiny header");
        let machine = Machine::custom(16 << 30, 100e9, 1e12);
        let base = Request::new(256, 1);
        let mut notes = Vec::new();
        let picks = header_picks("tiny", true, &header, &machine, &base, &mut notes).unwrap();
        assert_eq!(picks[0].basis, "catalog");
        assert!(picks[0].installed);
        assert!(picks[1..]
            .iter()
            .all(|p| p.basis == "estimated" && !p.installed));
        assert!(notes.is_empty(), "{notes:?}");

        let mut broken = header.clone();
        broken.tensors.retain(|t| t.name != "token_embd.weight");
        let picks = header_picks("broken", false, &broken, &machine, &base, &mut notes).unwrap();
        assert!(picks.is_empty());
        assert!(notes[0].starts_with("broken is left out: "), "{notes:?}");
    }
}
