//! The GPU adapters of this machine as the CLI shows them (`hearth plan --machine this`), and
//! `hearth gpu-selftest`.

use clap::Args;
use hearth_gpu::{AdapterSummary, DeviceChoice, Gpu, GpuOptions};
use serde::Serialize;

/// One adapter wgpu finds, and whether each `--device` choice would run on it.
#[derive(Serialize)]
pub struct AdapterRow {
    pub name: String,
    pub backend: String,
    /// "discrete GPU", "integrated GPU", "CPU (software)", ...
    pub kind: String,
    pub memory_bytes: Option<u64>,
    pub driver: String,
    /// `--device auto` (the default) would use it.
    pub auto: bool,
    /// `--device gpu` would use it.
    pub gpu: bool,
}

/// The adapters wgpu finds (Vulkan, Metal, DX12), with the device rule's choices marked.
pub fn adapter_rows() -> Vec<AdapterRow> {
    let list = hearth_gpu::adapters::list();
    let auto = hearth_gpu::choose(DeviceChoice::Auto, &list);
    let gpu = hearth_gpu::choose(DeviceChoice::Gpu, &list);
    list.into_iter()
        .enumerate()
        .map(|(i, a): (usize, AdapterSummary)| AdapterRow {
            kind: a.kind.to_string(),
            name: a.name,
            backend: a.backend,
            memory_bytes: a.memory_bytes,
            driver: a.driver,
            auto: auto == Some(i),
            gpu: gpu == Some(i),
        })
        .collect()
}

/// The text lines of `hearth plan --machine this` for the adapters.
pub fn print_adapters(rows: &[AdapterRow]) {
    println!();
    if rows.is_empty() {
        println!(
            "GPU adapters     none found (no Vulkan, Metal or DX12 driver; on Linux install \
             the Vulkan loader and your GPU's Vulkan driver)"
        );
        return;
    }
    println!("GPU adapters     (what --device sees)");
    for r in rows {
        let memory = match r.memory_bytes {
            Some(b) => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
            None => "memory not reported".to_string(),
        };
        let mut uses = Vec::new();
        if r.auto {
            uses.push("--device auto");
        }
        if r.gpu {
            uses.push("--device gpu");
        }
        let uses = if uses.is_empty() {
            String::new()
        } else {
            format!("; used by {}", uses.join(" and "))
        };
        println!("  {} ({}, {}, {memory}{uses})", r.name, r.kind, r.backend);
    }
    if !rows.iter().any(|r| r.auto) {
        println!(
            "  --device auto runs on the CPU: a software adapter is never chosen automatically"
        );
    }
}

#[derive(Args)]
pub struct SelftestArgs {
    /// The device to check: `gpu` (the best adapter, a software one if it is the only one) or
    /// `auto` (a real GPU only).
    #[arg(long, default_value = "gpu")]
    pub device: String,
    /// Check the path without subgroup operations even where the adapter has them.
    #[arg(long)]
    pub no_subgroups: bool,
    /// Seed of the random test data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `hearth gpu-selftest`: every kernel check on the device this machine has, as a table.
pub fn selftest(a: SelftestArgs) -> anyhow::Result<()> {
    let choice: DeviceChoice = a.device.parse().map_err(anyhow::Error::msg)?;
    if choice == DeviceChoice::Cpu {
        anyhow::bail!("gpu-selftest checks a GPU: use --device gpu or --device auto");
    }
    let opts = GpuOptions {
        subgroups: !a.no_subgroups,
    };
    let Some(gpu) = Gpu::open(choice, opts)? else {
        anyhow::bail!(
            "no real GPU found (--device auto never takes a software adapter); \
             --device gpu checks the best adapter there is"
        );
    };
    println!("device   {}", gpu.summary());
    println!(
        "path     {}subgroups, shader-f16 {}, largest binding {} MiB",
        if gpu.uses_subgroups() { "" } else { "no " },
        if gpu.has_shader_f16() {
            "offered"
        } else {
            "absent"
        },
        gpu.max_binding_bytes() >> 20
    );
    println!();
    let started = std::time::Instant::now();
    let checks = hearth_gpu::selftest::run_all(&gpu, a.seed)?;
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    println!("{:width$}  result  detail", "check");
    let mut failed = 0;
    for c in &checks {
        if !c.passed {
            failed += 1;
        }
        println!(
            "{:width$}  {}  {}",
            c.name,
            if c.passed { "ok    " } else { "FAILED" },
            c.detail
        );
    }
    println!();
    println!(
        "{} checks, {} failed, {:.1} s",
        checks.len(),
        failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        anyhow::bail!(
            "{failed} GPU kernel checks failed on {}",
            gpu.summary().name
        );
    }
    Ok(())
}
