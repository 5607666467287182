//! `hearth plan`: will a model fit this machine (or a named one), how fast, for how many users.
//!
//! The arithmetic is `hearth-plan`'s; this module does the I/O around it: resolving the model,
//! reading only its header (a prefix of the file, never the tensors), detecting this machine
//! (`/proc/meminfo`, cores, SIMD level, a short bandwidth measurement) and printing.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hearth_fetch::{Catalog, Home, Source};
use hearth_gguf::Header;
use hearth_plan::{Kind, KvType, Machine, ModelFacts, Plan, Profiles, Request};
use serde::Serialize;

/// Arguments of `hearth plan`.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// A catalog name, a path to a .gguf or an http(s) URL of one. Only the header is read: a
    /// URL, or a catalog model with a URL source that is not installed, with range requests.
    pub model: String,
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
}

/// What `--json` prints: the plan plus what it was made for.
#[derive(Serialize)]
struct Output<'a> {
    model: String,
    path: String,
    architecture: &'a str,
    n_layer: usize,
    n_params: u64,
    machine: &'a Machine,
    #[serde(flatten)]
    plan: &'a Plan,
    notes: Vec<String>,
}

pub fn run(a: PlanArgs) -> anyhow::Result<()> {
    let kv_type = KvType::parse(&a.kv_type)?;
    let mut notes = Vec::new();
    let (name, path, header) = match resolve(&a.model)? {
        Where::Remote { name, url } => {
            let (header, read, ranged) = read_url_header(&url)?;
            if !ranged {
                notes.push(format!(
                    "the server does not support range requests: streamed the first {read} bytes \
                     of the file for its header"
                ));
            }
            (name, PathBuf::from(url), header)
        }
        Where::Local { name, path } => {
            let header = read_header(&path)?;
            (name, path, header)
        }
    };
    let facts = ModelFacts::from_header(&header)
        .with_context(|| format!("cannot plan {}", path.display()))?;
    let machine = machine(&a)?;
    let ctx = a.ctx.unwrap_or(facts.config.ctx_train.clamp(1, 4096));
    let mut req = Request::new(ctx, a.users);
    req.kv_type = kv_type;
    req.threads = hearth_kernels::pool::physical_cores();
    let mut plan = hearth_plan::plan(&facts, &machine, &req)?;
    if !plan.fits {
        if let Some(advice) = other_profiles(&facts, &req)? {
            plan.advice.push(advice);
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
    if ctx > facts.config.ctx_train {
        notes.push(format!(
            "--ctx {ctx} is beyond the model's training context of {}",
            facts.config.ctx_train
        ));
    }
    notes.push(format!(
        "speeds are uncalibrated estimates: generation = bandwidth × {} / bytes read per token, \
         prompt = FLOP/s × {} / (2 × parameters)",
        req.tg_efficiency, req.pp_efficiency
    ));

    if a.json {
        let out = Output {
            model: name,
            path: path.display().to_string(),
            architecture: &facts.config.arch,
            n_layer: facts.config.n_layer,
            n_params: facts.n_params,
            machine: &machine,
            plan: &plan,
            notes,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&name, &facts, &machine, &plan, &notes);
    }
    Ok(())
}

/// The smallest profile of each kind on which the request fits as asked, as advice.
fn other_profiles(facts: &ModelFacts, req: &Request) -> anyhow::Result<Option<String>> {
    let profiles = Profiles::builtin();
    let mut picks = Vec::new();
    for kind in [Kind::Cpu, Kind::Unified, Kind::Gpu] {
        let mut best: Option<&Machine> = None;
        for m in profiles.iter().filter(|m| m.kind == kind) {
            let fits = hearth_plan::plan(facts, m, req)?.fits;
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

/// Whether `url` points at this machine (`localhost`, `127.x.x.x`, `[::1]`).
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    authority == "localhost"
        || authority.starts_with("localhost:")
        || authority.starts_with("127.")
        || authority.starts_with("[::1]")
}

/// Bytes asked for per range request: the header's end is overshot by at most this much.
const URL_STEP: u64 = 256 << 10;

/// Reads the header of a remote .gguf with HTTP range requests of [`URL_STEP`] (or what the
/// parser says it needs), so a 40 GB file is judged from its first few MB. A server that ignores
/// ranges is read as a stream, stopping once the header parses. Returns the header, the bytes
/// read and whether ranges were used.
fn read_url_header(url: &str) -> anyhow::Result<(Header, u64, bool)> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        // A proxy from the environment, except for this machine itself (ureq 2 ignores
        // NO_PROXY).
        .try_proxy_from_env(!is_loopback(url))
        .build();
    let mut buf = Vec::new();
    let mut want = URL_STEP;
    loop {
        let have = buf.len() as u64;
        let resp = agent
            .get(url)
            .set("Range", &format!("bytes={have}-{}", want - 1))
            .call()
            .with_context(|| format!("cannot read {url}"))?;
        if resp.status() != 206 {
            // The whole file is coming from its first byte: read only what the header needs.
            let (h, read) = read_header_from(resp.into_reader(), u64::MAX)
                .with_context(|| format!("cannot read the header of {url}"))?;
            return Ok((h, read, false));
        }
        resp.into_reader()
            .take(want - have)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {url}"))?;
        match Header::parse(&buf) {
            Ok(h) => return Ok((h, buf.len() as u64, true)),
            Err(hearth_gguf::Error::Truncated { needed, .. }) if buf.len() as u64 > have => {
                want = needed.max(buf.len() as u64 + URL_STEP);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read the header of {url}"));
            }
        }
    }
}

/// Reads a prefix of `path` long enough for the header, never the tensor data.
fn read_header(path: &Path) -> anyhow::Result<Header> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    let (header, _read) = read_header_from(file, len)
        .with_context(|| format!("cannot read the header of {}", path.display()))?;
    Ok(header)
}

/// Reads the header from the start of `src` (`len` bytes long): 1 MiB first, then as much as
/// the parser says it needs (vocabulary arrays make headers several MB). Returns the header and
/// the bytes read.
fn read_header_from(src: impl Read, len: u64) -> anyhow::Result<(Header, u64)> {
    let mut src = src;
    let mut buf = Vec::new();
    let mut want: u64 = (1 << 20).min(len);
    loop {
        let have = buf.len() as u64;
        if want > have {
            (&mut src).take(want - have).read_to_end(&mut buf)?;
        }
        match Header::parse(&buf) {
            Ok(h) => return Ok((h, buf.len() as u64)),
            Err(hearth_gguf::Error::Truncated { needed, .. })
                // Only while the last read made progress: a source shorter than `len` ends it.
                if (buf.len() as u64) < len && buf.len() as u64 > have =>
            {
                // Grow at least by half so a header takes few reads, without reading far past it.
                want = needed.max(buf.len() as u64 * 3 / 2).min(len);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The machine to plan for: a profile or this one, with `--memory` / `--bandwidth` applied
/// (which make it `custom`, keeping the rest of the base machine).
fn machine(a: &PlanArgs) -> anyhow::Result<Machine> {
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
    let mut m = if a.machine.eq_ignore_ascii_case("this") {
        detect(bandwidth.is_none())?
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
    Ok(m)
}

/// This machine: RAM total and available from `/proc/meminfo` (usable = available), physical
/// cores and SIMD level, and, when `measure`, memory bandwidth from a short read loop.
pub(crate) fn detect(measure: bool) -> anyhow::Result<Machine> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context(
        "cannot read /proc/meminfo to detect this machine's memory; give --machine or --memory",
    )?;
    let field = |key: &str| -> anyhow::Result<u64> {
        let line = meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("/proc/meminfo has no {key} line"))?;
        let kib: u64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("cannot read /proc/meminfo line {line:?}"))?;
        Ok(kib * 1024)
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?.min(total);
    let cores = hearth_kernels::pool::physical_cores();
    let level = hearth_kernels::simd::level();
    // FP32 FLOP per core per cycle: two 8-wide FMA units with AVX2, one 4-wide-ish scalar path
    // otherwise; 3 GHz is an assumed all-core clock. Only the prompt estimate uses this.
    let per_cycle = match level {
        hearth_kernels::simd::Level::Avx2 => 32.0,
        hearth_kernels::simd::Level::Scalar => 4.0,
    };
    let bandwidth = if measure {
        measure_bandwidth(cores)
    } else {
        0.0
    };
    Ok(Machine {
        name: "this".to_string(),
        label: format!("{cores} physical cores, SIMD {level:?}, system RAM"),
        kind: Kind::Cpu,
        memory_bytes: total,
        reserved_bytes: total - available,
        bandwidth_bytes_per_s: bandwidth,
        flops_per_s: cores as f64 * per_cycle * 3e9,
        source: "/proc/meminfo (usable = MemAvailable), measured read bandwidth, assumed 3 GHz"
            .to_string(),
    })
}

/// Read bandwidth in bytes/s: `threads` threads summing their share of a 256 MB buffer for
/// about 0.3 s. The buffer is written first so its pages are real memory, not the shared zero
/// page.
fn measure_bandwidth(threads: usize) -> f64 {
    const BYTES: usize = 256 << 20;
    let words: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let threads = threads.max(1);
    let share = words.len().div_ceil(threads);
    let start = Instant::now();
    let mut passes = 0usize;
    while start.elapsed() < Duration::from_millis(300) || passes == 0 {
        std::thread::scope(|s| {
            for part in words.chunks(share) {
                s.spawn(move || std::hint::black_box(part.iter().fold(0u64, |a, &w| a ^ w)));
            }
        });
        passes += 1;
    }
    (passes * BYTES) as f64 / start.elapsed().as_secs_f64()
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
    println!(
        "model            {name} ({}, {} layers, {:.0}M parameters, trained on {} tokens of context)",
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
    println!("total            {:>12}", human(p.total_bytes));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_read_without_the_tensor_data() {
        let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 test model");
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let (header, read) = read_header_from(file, len).unwrap();
        assert_eq!(header, *hearth_gguf::Gguf::open(&path).unwrap().header());
        // At most half again past where the header ends: far less than the file.
        assert!(read >= header.data_offset.min(len) / 2, "read {read}");
        assert!(
            read <= header.data_offset * 3 / 2 + (1 << 20),
            "read {read}"
        );
        assert!(read < len / 4, "read {read} of {len}");
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback("http://127.0.0.1:8080/m.gguf"));
        assert!(is_loopback("http://localhost/m.gguf"));
        assert!(is_loopback("http://[::1]:80/m.gguf"));
        assert!(!is_loopback("https://localhost.example.org/m.gguf"));
        assert!(!is_loopback("https://example.org/127.0.0.1"));
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_loop() {
        let bytes = hearth_model::testing::TinySpec::new("llama").build();
        let cut = &bytes[..64];
        let e = read_header_from(cut, cut.len() as u64)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ends"), "{e}");
    }
}
