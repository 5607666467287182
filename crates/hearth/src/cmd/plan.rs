//! `hearth plan`: will a model fit this machine (or a named one), how fast, for how many users.
//!
//! The arithmetic is `hearth-plan`'s (`--recommend`'s ranking and the GPUs' plans included);
//! this module parses the arguments, does the I/O around the arithmetic and prints. The I/O:
//! resolving the model, reading only its header (`hearth_fetch::header`: a prefix of the file,
//! or range requests for a URL, never the tensors), detecting this machine (`hearth-host`:
//! memory, cores, SIMD level, a short bandwidth measurement, NVIDIA GPUs through `nvidia-smi`)
//! and the stored calibration.
//!
//! Two more modes: `--calibrate` measures the engine on this machine and stores the
//! efficiencies in `calibration.json` in Hearth's data directory, which later plans for
//! `--machine this` use; `--recommend` plans every catalog model, and the common quantizations
//! of each, and lists what fits, best first.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use hearth_engine::{Engine, EngineOptions, Speculation};
use hearth_fetch::{Catalog, Home, Source, UrlHeader};
use hearth_model::{Model, SamplerConfig};
use hearth_plan::advice;
use hearth_plan::{
    Calibration, GpuPlan, Kind, KvType, Machine, ModelFacts, Plan, Profiles, Recommendation,
    Request,
};
use serde::Serialize;

/// Arguments of `hearth plan`.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// A catalog name, a path to a .gguf or an http(s) URL of one. Only the header is read: a
    /// URL, or a catalog model with a URL source that is not installed, with range requests.
    /// Not given with --recommend or --calibrate.
    #[arg(required_unless_present_any = ["recommend", "calibrate"])]
    pub model: Option<String>,
    /// Context per user, in tokens (default: the model's training context, at most 4096).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Users generating at the same time.
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    /// How K and V are stored: f16 (what the engine does) or q8_0 (a plan for a later engine).
    #[arg(long, default_value = "f16")]
    pub kv_type: String,
    /// `this` (detected) or a profile name such as rtx-4090, m3-ultra-512, pc-16.
    #[arg(long, default_value = "this")]
    pub machine: String,
    /// Memory of the machine, like 24GiB or 16GB (replaces the profile's; nothing held back).
    #[arg(long)]
    pub memory: Option<String>,
    /// Memory bandwidth of the machine, like 1008GB/s (replaces the profile's).
    #[arg(long)]
    pub bandwidth: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List the catalog models and quantizations that fit the machine, best first.
    #[arg(long, conflicts_with_all = ["model", "calibrate"])]
    pub recommend: bool,
    /// Measure the engine on this machine (bandwidth, generation and prompt speed on the
    /// smallest installed model) and store it for later estimates.
    #[arg(long, conflicts_with_all = ["model", "machine", "memory", "bandwidth"])]
    pub calibrate: bool,
    /// Plan the household's pool: route whole chats to one machine, or split the model's
    /// layers across several. The machines are this one and the members the running head
    /// last heard from, or exactly the --member machines given.
    #[arg(long)]
    pub pool: bool,
    /// A machine for --pool, offline: `NAME,memory=16GiB,bandwidth=60GB/s[,flops=1e12]
    /// [,rtt=1ms][,link=1Gbit/s][,busy=N]` (repeat; the first is the head). Implies --pool.
    #[arg(long, value_name = "SPEC")]
    pub member: Vec<String>,
}

/// What `--json` prints: the plan plus what it was made for.
#[derive(Serialize)]
struct Output<'a> {
    model: String,
    path: String,
    architecture: &'a str,
    n_layer: usize,
    n_params: u64,
    /// Parameters a token uses (a mixture of experts: only its routed experts').
    n_active_params: u64,
    /// Of the weights, a mixture of experts' expert tensors: left mapped from the file.
    expert_bytes: u64,
    machine: &'a Machine,
    #[serde(flatten)]
    plan: &'a Plan,
    /// NVIDIA GPUs of this machine (`--machine this`), each with its own plan.
    gpus: &'a [GpuPlan],
    /// The GPU adapters wgpu finds (`--machine this`), and which `--device` would use.
    adapters: &'a [super::devices::AdapterRow],
    notes: Vec<String>,
}

pub fn run(a: PlanArgs) -> anyhow::Result<()> {
    if a.calibrate {
        return calibrate(&a);
    }
    if a.recommend {
        return recommend(&a);
    }
    let spec = a
        .model
        .as_deref()
        .context("name a model to plan, or give --recommend or --calibrate")?;
    let kv_type = KvType::parse(&a.kv_type)?;
    let mut notes = Vec::new();
    let (name, path, header) = match resolve(spec)? {
        Where::Remote { name, url } => {
            let UrlHeader {
                header,
                read,
                ranged,
            } = hearth_fetch::read_url_header(&url)?;
            if !ranged {
                notes.push(format!(
                    "the server does not support range requests: streamed the first {read} bytes \
                     of the file for its header"
                ));
            }
            (name, PathBuf::from(url), header)
        }
        Where::Local { name, path } => {
            let header = hearth_fetch::read_header(&path)?;
            (name, path, header)
        }
    };
    let facts = ModelFacts::from_header(&header)
        .with_context(|| format!("cannot plan {}", path.display()))?;
    let (machine, calibration) = machine(&a)?;
    let ctx = a.ctx.unwrap_or(facts.config.ctx_train.clamp(1, 4096));
    let mut req = Request::new(ctx, a.users);
    req.kv_type = kv_type;
    req.threads = hearth_kernels::pool::physical_cores();
    calibration.apply(&mut req, &mut notes);
    if a.pool || !a.member.is_empty() {
        return super::plan_pool::run(&a, &name, &header, &facts, &req, &machine, &notes);
    }
    let mut plan = hearth_plan::plan(&facts, &machine, &req)?;
    let gpus = if a.machine.eq_ignore_ascii_case("this") {
        let profiles = Profiles::builtin();
        advice::gpu_plans(hearth_host::gpus()?, &facts, &req, &profiles, &mut notes)?
    } else {
        Vec::new()
    };
    let adapters = if a.machine.eq_ignore_ascii_case("this") {
        super::devices::adapter_rows()
    } else {
        Vec::new()
    };
    if !plan.fits {
        if let Some(elsewhere) = advice::other_profiles(&facts, &req, &Profiles::builtin())? {
            plan.advice.push(elsewhere);
        }
    }

    if machine.kind != Kind::Cpu {
        notes.push(
            "Hearth runs on the CPU today: for this GPU the fit is from its memory and the speeds \
             are bandwidth and FLOP estimates for a GPU engine, not Hearth measurements"
                .to_string(),
        );
    }
    if kv_type == KvType::Q8_0 {
        notes.push(
            "the engine stores KV as f16 today; q8_0 KV is a plan for a later engine".to_string(),
        );
    }
    if ctx > facts.config.max_ctx() {
        notes.push(format!(
            "--ctx {ctx} is beyond the model's training context of {} (the file declares no RoPE scaling that reaches it)",
            facts.config.ctx_train
        ));
    } else if ctx > facts.config.ctx_train {
        notes.push(format!(
            "--ctx {ctx} is beyond the model's training context of {}, reached by the RoPE scaling its file declares (up to {})",
            facts.config.ctx_train,
            facts.config.max_ctx()
        ));
    }
    notes.push(format!(
        "speeds are {} estimates: generation = bandwidth × {:.3} / bytes read per token, \
         prompt = FLOP/s × {:.3} / (2 × parameters)",
        calibration.label(),
        req.tg_efficiency,
        req.pp_efficiency
    ));

    if a.json {
        let out = Output {
            model: name,
            path: path.display().to_string(),
            architecture: &facts.config.arch,
            n_layer: facts.config.n_layer,
            n_params: facts.n_params,
            n_active_params: facts.n_active_params,
            expert_bytes: facts.expert_bytes,
            machine: &machine,
            plan: &plan,
            gpus: &gpus,
            adapters: &adapters,
            notes,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&name, &facts, &machine, &plan, &notes);
        for g in &gpus {
            println!();
            println!(
                "GPU              {} ({} usable of {}; profile {})",
                g.gpu.name,
                human(g.plan.usable_bytes),
                human(g.gpu.memory_bytes),
                g.profile.as_deref().unwrap_or("none")
            );
            println!(
                "  fits           {}, total {}",
                if g.plan.fits { "yes" } else { "NO" },
                human(g.plan.total_bytes)
            );
            if g.profile.is_some() {
                println!(
                    "  generation     ~{:.1} tok/s per user (estimate for a GPU engine, not a \
                     Hearth measurement)",
                    g.plan.est_tg_tok_s
                );
            }
        }
        if a.machine.eq_ignore_ascii_case("this") {
            super::devices::print_adapters(&adapters);
        }
    }
    Ok(())
}

/// Where a model's header is.
enum Where {
    /// A file on this machine.
    Local { name: String, path: PathBuf },
    /// A URL: given as such, or the source of a catalog model that is not installed.
    Remote { name: String, url: String },
}

/// Finds the model without downloading it: a URL; an installed name or existing path; else a
/// catalog model with a URL source, whose header is read remotely. A catalog model fetched
/// through pip that is not installed is an error that says how to get it.
fn resolve(spec: &str) -> anyhow::Result<Where> {
    if is_url(spec) {
        let name = hearth_fetch::http::file_name_of_url(spec).unwrap_or_else(|| spec.to_string());
        return Ok(Where::Remote {
            name,
            url: spec.to_string(),
        });
    }
    let home = Home::from_env()?;
    let catalog = Catalog::load(&home)?;
    let r = match hearth_fetch::resolve(&home, &catalog, spec) {
        Ok(r) => r,
        Err(e) => {
            if let Some(Source::Url { url }) = catalog.get(spec).map(|entry| &entry.source) {
                return Ok(Where::Remote {
                    name: spec.to_string(),
                    url: url.clone(),
                });
            }
            return Err(e).with_context(|| {
                format!(
                    "cannot plan {spec:?} without its header: pull it first (hearth pull {spec}) \
                     or give the path or URL of a .gguf"
                )
            });
        }
    };
    if r.path.is_dir() {
        bail!(
            "{} is a directory; give the path of a .gguf file",
            r.path.display()
        );
    }
    Ok(Where::Local {
        name: r.name,
        path: r.path,
    })
}

fn is_url(spec: &str) -> bool {
    spec.starts_with("http://") || spec.starts_with("https://")
}

/// What the speed estimates rest on.
pub(crate) enum Calib {
    /// This machine's stored calibration.
    Used(Calibration),
    /// Defaults; the note says why no calibration applies, when one was found.
    Default(Option<String>),
}

impl Calib {
    /// Puts the calibrated efficiencies into `req`, or notes why there are none.
    pub(crate) fn apply(&self, req: &mut Request, notes: &mut Vec<String>) {
        match self {
            Calib::Used(c) => {
                req.tg_efficiency = c.tg_efficiency;
                req.pp_efficiency = c.pp_efficiency;
            }
            Calib::Default(Some(why)) => notes.push(why.clone()),
            Calib::Default(None) => {}
        }
    }

    fn label(&self) -> String {
        match self {
            Calib::Used(c) => format!(
                "calibrated on {} ({}, {} threads)",
                c.date, c.model, c.threads
            ),
            Calib::Default(_) => "uncalibrated".to_string(),
        }
    }
}

/// The machine to plan for: a profile or this one, with `--memory` / `--bandwidth` applied
/// (which make it `custom`, keeping the rest of the base machine), and the calibration that
/// applies to it: this machine's stored one, unless `--bandwidth` describes another machine.
pub(crate) fn machine(a: &PlanArgs) -> anyhow::Result<(Machine, Calib)> {
    let memory = a
        .memory
        .as_deref()
        .map(hearth_plan::parse_bytes)
        .transpose()?;
    let bandwidth = a
        .bandwidth
        .as_deref()
        .map(hearth_plan::parse_rate)
        .transpose()?;
    let this = a.machine.eq_ignore_ascii_case("this");
    let calib = if this && bandwidth.is_none() {
        load_calibration()?
    } else {
        Calib::Default(None)
    };
    let mut m = if this {
        // A calibration carries the bandwidth its efficiency is relative to: no need to measure.
        let mut m = hearth_host::detect(bandwidth.is_none() && !matches!(calib, Calib::Used(_)))?;
        if let Calib::Used(c) = &calib {
            m.bandwidth_bytes_per_s = c.bandwidth_bytes_per_s;
            m.flops_per_s = c.flops_per_s;
            m.source = format!(
                "{}; bandwidth measured by hearth plan --calibrate on {}",
                m.source, c.date
            );
        }
        m
    } else {
        Profiles::builtin().get(&a.machine)?.clone()
    };
    if let Some(bytes) = memory {
        m.memory_bytes = bytes;
        m.reserved_bytes = 0;
        m.name = "custom".to_string();
    }
    if let Some(rate) = bandwidth {
        m.bandwidth_bytes_per_s = rate;
        m.name = "custom".to_string();
    }
    Ok((m, calib))
}

/// Where `--calibrate` stores its result.
fn calibration_path() -> anyhow::Result<PathBuf> {
    Ok(Home::from_env()?.root().join("calibration.json"))
}

/// This machine's stored calibration, if there is one and it was made here.
pub(crate) fn load_calibration() -> anyhow::Result<Calib> {
    let path = calibration_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Calib::Default(None)),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let c: Calibration = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a calibration; run hearth plan --calibrate again",
            path.display()
        )
    })?;
    let here = hearth_host::machine_facts()?;
    Ok(if c.machine.same_as(&here) {
        Calib::Used(c)
    } else {
        Calib::Default(Some(format!(
            "the stored calibration ({}) was made on another machine ({}, {} cores); run \
             hearth plan --calibrate here",
            c.date, c.machine.cpu, c.machine.cores
        )))
    })
}

/// Generation and prompt speed of the engine on one model, measured like `hearth bench`.
struct Speed {
    tg_tok_s: f64,
    pp_tok_s: f64,
    /// Position the generation is centred on.
    tg_ctx: usize,
}

/// Tokens generated for the generation measurement.
const CAL_GEN: usize = 64;
/// Prompt tokens for the prompt measurement.
const CAL_PROMPT: usize = 256;

/// Measures `path` on `threads` threads: one prompt of [`CAL_PROMPT`] tokens, then
/// [`CAL_GEN`] tokens generated after a one-token prompt, each after a warm-up that touches the
/// weights.
fn measure_speed(path: &Path, threads: usize) -> anyhow::Result<Speed> {
    let model = Model::open(path).with_context(|| format!("cannot load {}", path.display()))?;
    let n_vocab = model.config().n_vocab as u32;
    let mut engine = Engine::new(
        model,
        EngineOptions {
            ctx: CAL_PROMPT + CAL_GEN + 8,
            threads,
            max_seqs: 1,
            prefill_chunk: CAL_PROMPT,
            max_batch_tokens: CAL_PROMPT,
            prefix_cache: false,
            // The calibration measures one forward pass per token.
            speculation: Speculation::Off,
            ..EngineOptions::default()
        },
    );
    // Fixed arbitrary ids: speed does not depend on which tokens they are.
    let tokens: Vec<u32> = (0..CAL_PROMPT as u32)
        .map(|i| (i * 7919 + 13) % n_vocab)
        .collect();
    let mut run = |prompt: Vec<u32>, max_tokens: usize| -> anyhow::Result<(f64, usize)> {
        let id = engine.add(hearth_engine::Request {
            prompt,
            sampler: SamplerConfig::greedy(),
            max_tokens,
            stop_tokens: vec![],
            ..Default::default()
        })?;
        // The first step carries the whole prompt (one chunk).
        let t = Instant::now();
        engine.step()?;
        let prompt_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut n = 0;
        while engine.has_work() {
            engine.step()?;
            n += 1;
        }
        let gen_s = t.elapsed().as_secs_f64();
        engine.remove(id)?;
        Ok((if max_tokens == 1 { prompt_s } else { gen_s }, n.max(1)))
    };
    run(tokens[..8].to_vec(), 4)?; // warm-up
    let (pp_s, _) = run(tokens.clone(), 1)?;
    let (tg_s, n) = run(vec![tokens[0]], CAL_GEN)?;
    Ok(Speed {
        tg_tok_s: n as f64 / tg_s,
        pp_tok_s: CAL_PROMPT as f64 / pp_s,
        tg_ctx: CAL_GEN / 2,
    })
}

/// Installed catalog models that are single .gguf files, smallest first.
fn installed_ggufs() -> anyhow::Result<Vec<(String, PathBuf)>> {
    let home = Home::from_env()?;
    let catalog = Catalog::load(&home)?;
    let mut found = Vec::new();
    for entry in catalog.entries() {
        if let Ok(r) = hearth_fetch::resolve(&home, &catalog, &entry.name) {
            if r.path.is_file() {
                found.push((entry.size, entry.name.clone(), r.path));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, n, p)| (n, p)).collect())
}

/// `--calibrate`: measures bandwidth and the engine on the smallest installed catalog model,
/// stores the efficiencies, then prints predicted against measured generation speed for every
/// installed catalog model (a benchmark printout, not a test).
fn calibrate(a: &PlanArgs) -> anyhow::Result<()> {
    let models = installed_ggufs()?;
    let Some((cal_name, cal_path)) = models.first().cloned() else {
        bail!(
            "no catalog model is installed to calibrate on; pull one first, e.g. hearth pull \
             smollm2-135m"
        );
    };
    let threads = hearth_kernels::pool::physical_cores();
    let here = hearth_host::machine_facts()?;
    let machine = hearth_host::detect(true)?;
    let facts_of = |path: &Path| -> anyhow::Result<ModelFacts> {
        let header = hearth_fetch::read_header(path)?;
        ModelFacts::from_header(&header).with_context(|| format!("cannot plan {}", path.display()))
    };
    let facts = facts_of(&cal_path)?;
    let speed = measure_speed(&cal_path, threads)?;
    let bw = machine.bandwidth_bytes_per_s;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cal = Calibration {
        date: hearth_plan::calibrate::date_of_unix(secs),
        machine: here,
        bandwidth_bytes_per_s: bw,
        flops_per_s: machine.flops_per_s,
        tg_efficiency: hearth_plan::calibrate::tg_efficiency(
            &facts,
            speed.tg_ctx,
            speed.tg_tok_s,
            bw,
        ),
        pp_efficiency: hearth_plan::calibrate::pp_efficiency(
            &facts,
            speed.pp_tok_s,
            machine.flops_per_s,
        ),
        model: cal_name.clone(),
        threads,
        tg_tok_s: speed.tg_tok_s,
        pp_tok_s: speed.pp_tok_s,
        tg_ctx: speed.tg_ctx,
    };
    let path = calibration_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&cal)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;

    // Predicted (with the new calibration) against measured, on every installed model.
    let mut rows = Vec::new();
    for (name, p) in &models {
        let f = facts_of(p)?;
        let measured = if *name == cal_name {
            speed.tg_tok_s
        } else {
            measure_speed(p, threads)?.tg_tok_s
        };
        let read = hearth_plan::calibrate::tg_bytes_read(&f, speed.tg_ctx);
        let predicted = bw * cal.tg_efficiency / read as f64;
        rows.push(serde_json::json!({
            "model": name, "predicted_tg_tok_s": predicted, "measured_tg_tok_s": measured,
            "ratio": predicted / measured,
        }));
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "calibration": cal, "path": path.display().to_string(), "check": rows,
            }))?
        );
    } else {
        println!(
            "calibrated on {} with {cal_name} ({threads} threads): bandwidth {:.1} GB/s, \
             generation {:.1} tok/s = {:.0}% of bandwidth, prompt {:.0} tok/s = {:.0}% of {:.0} \
             GFLOP/s",
            cal.date,
            bw / 1e9,
            cal.tg_tok_s,
            cal.tg_efficiency * 100.0,
            cal.pp_tok_s,
            cal.pp_efficiency * 100.0,
            cal.flops_per_s / 1e9
        );
        println!("stored in {}", path.display());
        println!();
        println!(
            "{:<20} {:>14} {:>14} {:>8}",
            "model", "predicted tg", "measured tg", "ratio"
        );
        for r in &rows {
            println!(
                "{:<20} {:>10.1} t/s {:>10.1} t/s {:>8.2}",
                r["model"].as_str().unwrap_or(""),
                r["predicted_tg_tok_s"].as_f64().unwrap_or(0.0),
                r["measured_tg_tok_s"].as_f64().unwrap_or(0.0),
                r["ratio"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

/// `--recommend`: every catalog GGUF model as its catalog file and at the common quantizations
/// of [`hearth_plan::QUANT_PRESETS`], planned for the request on the machine; those that fit,
/// best first (fast enough to chat before slow, then more parameters, then more bits).
fn recommend(a: &PlanArgs) -> anyhow::Result<()> {
    let kv_type = KvType::parse(&a.kv_type)?;
    let (machine, calibration) = machine(a)?;
    let home = Home::from_env()?;
    let catalog = Catalog::load(&home)?;
    let mut notes = Vec::new();
    let mut picks = Vec::new();
    let mut base = Request::new(a.ctx.unwrap_or(4096), a.users);
    base.kv_type = kv_type;
    base.threads = hearth_kernels::pool::physical_cores();
    calibration.apply(&mut base, &mut notes);
    for entry in catalog.entries() {
        // A model directory (the embedding model) is not a language model to plan.
        if matches!(entry.source, Source::Files { .. }) {
            continue;
        }
        let installed = hearth_fetch::resolve(&home, &catalog, &entry.name)
            .ok()
            .filter(|r| r.path.is_file());
        let header = match (&installed, &entry.source) {
            (Some(r), _) => Some(hearth_fetch::read_header(&r.path)?),
            (None, Source::Url { url }) => Some(hearth_fetch::read_url_header(url)?.header),
            _ => None,
        };
        let Some(header) = header else {
            picks.push(advice::size_pick(&entry.name, entry.size, &machine, &base));
            continue;
        };
        picks.extend(advice::header_picks(
            &entry.name,
            installed.is_some(),
            &header,
            &machine,
            &base,
            &mut notes,
        )?);
    }
    let Recommendation {
        planned: n_planned,
        picks,
    } = advice::rank(picks, &machine, &mut notes);
    notes.push(format!("speeds are {} estimates", calibration.label()));
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "machine": machine, "ctx": base.ctx, "users": base.users,
                "planned": n_planned, "picks": picks, "notes": notes,
            }))?
        );
        return Ok(());
    }
    println!(
        "machine  {}: {} [{}], {} usable; {} tokens of context × {} user(s)",
        machine.name,
        machine.label,
        machine.kind.name(),
        human(machine.usable_bytes()),
        base.ctx,
        base.users
    );
    if picks.is_empty() {
        println!("nothing in the catalog fits ({n_planned} options planned)");
    } else {
        println!();
        println!(
            "{:<16} {:<18} {:>6} {:>11} {:>11} {:>10} {:>10}  basis",
            "model", "quantization", "bits", "weights", "total", "tg tok/s", "pp tok/s"
        );
        for p in &picks {
            println!(
                "{:<16} {:<18} {:>6.2} {:>11} {:>11} {:>10.1} {:>10.0}  {}{}",
                p.model,
                p.quantization,
                p.bits_per_weight,
                human(p.weights_bytes),
                human(p.total_bytes),
                p.est_tg_tok_s,
                p.est_pp_tok_s,
                p.basis,
                if p.installed { ", installed" } else { "" }
            );
        }
    }
    for n in &notes {
        println!("note     {n}");
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

fn print_table(name: &str, facts: &ModelFacts, m: &Machine, p: &Plan, notes: &[String]) {
    let c = &facts.config;
    let experts = match &c.experts {
        Some(x) => format!(
            " ({:.0}M active: {} of {} experts per token)",
            facts.n_active_params as f64 / 1e6,
            x.n_used,
            x.n_expert
        ),
        None => String::new(),
    };
    println!(
        "model            {name} ({}, {} layers, {:.0}M parameters{experts}, trained on {} tokens of context)",
        c.arch,
        c.n_layer,
        facts.n_params as f64 / 1e6,
        c.ctx_train
    );
    println!(
        "machine          {}: {} [{}], {} usable of {}, {:.0} GB/s",
        m.name,
        m.label,
        m.kind.name(),
        human(m.usable_bytes()),
        human(m.memory_bytes),
        m.bandwidth_bytes_per_s / 1e9
    );
    println!(
        "request          {} tokens of context × {} user(s), KV {}",
        p.ctx,
        p.users,
        p.kv_type.name()
    );
    println!();
    println!("weights          {:>12}", human(p.weights_bytes));
    println!(
        "KV cache         {:>12}   ({} bytes per token, {} per user)",
        human(p.kv_bytes),
        p.kv_bytes_per_token,
        human(p.kv_bytes_per_user)
    );
    println!(
        "compute buffers  {:>12}   (estimate)",
        human(p.compute_bytes)
    );
    println!(
        "runtime          {:>12}   (binary, tokenizer and metadata, file header)",
        human(p.runtime_bytes + p.header_bytes)
    );
    println!(
        "total            {:>12}   (predicted peak resident memory)",
        human(p.total_bytes)
    );
    if p.fits {
        println!(
            "fits             yes, {} to spare",
            human(p.headroom_bytes.unsigned_abs())
        );
    } else {
        println!(
            "fits             NO, {} short",
            human(p.headroom_bytes.unsigned_abs())
        );
    }
    println!(
        "longest context  {} tokens per user for {} user(s)",
        p.max_ctx_per_user, p.users
    );
    println!(
        "most users       {} at {} tokens each",
        p.max_users_at_ctx, p.ctx
    );
    println!(
        "generation       ~{:.1} tok/s per user (estimate)",
        p.est_tg_tok_s
    );
    println!("prompt           ~{:.0} tok/s (estimate)", p.est_pp_tok_s);
    for a in &p.advice {
        println!("advice           {a}");
    }
    for n in notes {
        println!("note             {n}");
    }
}
