//! hearth-host: detecting the machine Hearth runs on, as `hearth-plan` describes machines.
//!
//! Memory comes from `/proc/meminfo` (usable = `MemAvailable`), physical cores and the SIMD
//! level from `hearth-kernels` (the same figures the engine runs with), read bandwidth from a
//! short measurement ([`measure_bandwidth`]), and NVIDIA GPUs from `nvidia-smi` ([`gpus`]).
//! [`machine_facts`] is what identifies the machine for a stored calibration.
//!
//! This is I/O, so it is not `hearth-plan`'s (pure functions); and it is a library, not part
//! of the binary, because more than `hearth plan` needs it: `hearth serve` sizes its defaults by
//! it, and a pool member reports it to the head.

use std::time::{Duration, Instant};

use hearth_kernels::simd::Level;
use hearth_plan::{DetectedGpu, Kind, Machine, MachineFacts};

/// Everything that can go wrong while detecting this machine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/proc/meminfo` cannot be read (not Linux, or no `/proc`).
    #[error(
        "cannot read /proc/meminfo to detect this machine's memory; give --machine or --memory"
    )]
    Meminfo(#[source] std::io::Error),
    /// `/proc/meminfo` lacks a line Hearth needs.
    #[error("/proc/meminfo has no {key} line")]
    MeminfoKey { key: &'static str },
    /// A `/proc/meminfo` line does not hold a number of kB.
    #[error("cannot read /proc/meminfo line {line:?}")]
    MeminfoLine {
        line: String,
        #[source]
        source: std::num::ParseIntError,
    },
    /// `nvidia-smi` printed something other than its CSV.
    #[error(transparent)]
    NvidiaSmi(#[from] hearth_plan::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// This machine: RAM total and available from `/proc/meminfo` (usable = available), physical
/// cores and SIMD level, and, when `measure`, memory bandwidth from a short read loop (else
/// the bandwidth is 0).
pub fn detect(measure: bool) -> Result<Machine> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").map_err(Error::Meminfo)?;
    let field = |key: &'static str| -> Result<u64> {
        let line = meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .ok_or(Error::MeminfoKey { key })?;
        let kib: u64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|source| Error::MeminfoLine {
                line: line.to_string(),
                source,
            })?;
        Ok(kib * 1024)
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?.min(total);
    let cores = hearth_kernels::pool::physical_cores();
    let level = hearth_kernels::simd::level();
    // FP32 FLOP per core per cycle: two 8-wide FMA units with AVX2, two 4-wide ones with NEON
    // (four on Apple's big cores, not assumed here), one 4-wide-ish scalar path otherwise; 3 GHz
    // is an assumed all-core clock. Only the prompt estimate uses this.
    let per_cycle = match level {
        Level::Avx2 | Level::Avx512Vnni => 32.0,
        Level::Neon | Level::NeonDot | Level::NeonI8mm => 16.0,
        Level::Scalar => 4.0,
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
pub fn measure_bandwidth(threads: usize) -> f64 {
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

/// What identifies this machine for a stored calibration: CPU model, physical cores, SIMD
/// level, RAM.
pub fn machine_facts() -> Result<MachineFacts> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    Ok(MachineFacts {
        cpu,
        cores: hearth_kernels::pool::physical_cores(),
        simd: format!("{:?}", hearth_kernels::simd::level()),
        memory_bytes: detect(false)?.memory_bytes,
    })
}

/// NVIDIA GPUs of this machine, from `nvidia-smi` (or the program `HEARTH_NVIDIA_SMI` names);
/// none when the program is absent or fails (no driver, no GPU: a CPU-only machine).
pub fn gpus() -> Result<Vec<DetectedGpu>> {
    let program = std::env::var_os("HEARTH_NVIDIA_SMI").unwrap_or_else(|| "nvidia-smi".into());
    let out = match std::process::Command::new(&program)
        .args([
            "--query-gpu=name,memory.total,memory.used",
            "--format=csv,noheader,nounits",
        ])
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => out,
        _ => return Ok(Vec::new()),
    };
    Ok(hearth_plan::parse_nvidia_smi(&String::from_utf8_lossy(
        &out.stdout,
    ))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_memory_and_is_itself() {
        let m = detect(false).unwrap();
        assert!(m.memory_bytes > 0);
        assert!(m.usable_bytes() <= m.memory_bytes);
        assert_eq!(m.bandwidth_bytes_per_s, 0.0);
        let facts = machine_facts().unwrap();
        assert!(facts.same_as(&machine_facts().unwrap()));
    }
}
