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
    /// The bandwidth probe cannot map its buffer.
    #[error("cannot map {bytes} bytes of memory for the bandwidth probe")]
    ProbeMemory {
        bytes: usize,
        #[source]
        source: std::io::Error,
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
        measure_bandwidth(cores)?.bytes_per_s
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

/// What the read-bandwidth probe measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    /// Read bandwidth, bytes per second: the median pass.
    pub bytes_per_s: f64,
    /// Size of the buffer read in each pass.
    pub buffer_bytes: usize,
    /// Threads that read it, the pool the engine uses at the same count.
    pub threads: usize,
    /// Passes over the buffer.
    pub passes: usize,
}

/// Read bandwidth: `threads` threads of the engine's pool stream a buffer several times the
/// last-level cache ([`probe_buffer_bytes`]) with the SIMD read loop
/// ([`hearth_kernels::xor_words`]), in chunks they claim as decode's matmuls do, for at least
/// three passes and half a second. The buffer is written first so its pages are real memory
/// (not the shared zero page), and asks for huge pages as the engine's weights do.
///
/// The median pass is reported, not the best: `hearth bench --bandwidth` sets generation
/// speed, a mean, against it, and on a busy machine the best pass would be a moment the model
/// never saw.
pub fn measure_bandwidth(threads: usize) -> Result<Probe> {
    let threads = threads.max(1);
    let bytes = probe_buffer_bytes(last_level_cache_bytes(), available_bytes());
    let mut buf =
        memmap2::MmapMut::map_anon(bytes).map_err(|source| Error::ProbeMemory { bytes, source })?;
    #[cfg(target_os = "linux")]
    // Only a hint: without huge pages the probe works the same.
    let _ = buf.advise(memmap2::Advice::HugePage);
    // Each thread writes its share, so first touch places the pages as the reads will use
    // them.
    let share = bytes.div_ceil(threads);
    std::thread::scope(|s| {
        for (i, part) in buf.chunks_mut(share).enumerate() {
            s.spawn(move || part.fill(0x5a ^ i as u8));
        }
    });
    let pool = hearth_kernels::ThreadPool::new(threads);
    let chunk = PROBE_CHUNK.min(bytes);
    let n_chunks = bytes.div_ceil(chunk);
    let buf: &[u8] = &buf;
    let mut rates = Vec::new();
    let start = Instant::now();
    while rates.len() < 3 || (start.elapsed() < Duration::from_millis(500) && rates.len() < 50) {
        let t = Instant::now();
        pool.run_chunks(n_chunks, |_, c| {
            let part = &buf[c * chunk..((c + 1) * chunk).min(bytes)];
            std::hint::black_box(hearth_kernels::xor_words(part));
        });
        rates.push(bytes as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(Probe {
        bytes_per_s: rates[rates.len() / 2],
        buffer_bytes: bytes,
        threads,
        passes: rates.len(),
    })
}

/// Bytes a thread claims at a time in the probe: a few hundred claims per pass, negligible
/// next to the reads.
const PROBE_CHUNK: usize = 8 << 20;

/// The probe's buffer: four times the last-level cache and at least 1 GiB, so that almost
/// every read comes from memory even on CPUs with a cache of hundreds of MB; at most a quarter
/// of the available memory and at least 64 MiB; whole 2 MiB huge pages. Without a known
/// cache, 1 GiB; without known available memory, no cap.
pub fn probe_buffer_bytes(llc_bytes: Option<u64>, available_bytes: Option<u64>) -> usize {
    const MIB: u64 = 1 << 20;
    let want = llc_bytes.map_or(0, |c| 4 * c).max(1024 * MIB);
    let capped = available_bytes
        .map_or(want, |a| want.min(a / 4))
        .max(64 * MIB);
    (capped / (2 * MIB) * (2 * MIB)) as usize
}

/// The largest CPU cache of CPU 0, from sysfs (`/sys/devices/system/cpu/cpu0/cache`); `None`
/// where the OS does not say.
fn last_level_cache_bytes() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("size")).ok())
        .filter_map(|s| parse_cache_size(&s))
        .max()
}

/// A sysfs cache size: `491520K`, `32M`, `1024` (bytes).
pub fn parse_cache_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `MemAvailable` from `/proc/meminfo`, `None` where it cannot be read.
fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line["MemAvailable:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
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

    #[test]
    fn cache_sizes_read_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("491520K\n"), Some(491520 << 10));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("1024"), Some(1024));
        assert_eq!(parse_cache_size("lots"), None);
        assert_eq!(parse_cache_size("12Q"), None);
    }

    #[test]
    fn the_probe_buffer_dwarfs_the_cache_within_the_memory() {
        const MIB: u64 = 1 << 20;
        // A 480 MiB L3 (a server VM): four times it.
        assert_eq!(
            probe_buffer_bytes(Some(480 * MIB), Some(22 << 30)),
            (1920 * MIB) as usize
        );
        // A desktop's 32 MiB: at least 1 GiB; unknown cache: 1 GiB.
        assert_eq!(probe_buffer_bytes(Some(32 * MIB), None), 1 << 30);
        assert_eq!(probe_buffer_bytes(None, None), 1 << 30);
        // Little memory: a quarter of what is available, whole huge pages, at least 64 MiB.
        assert_eq!(
            probe_buffer_bytes(None, Some(1001 * MIB)),
            (250 * MIB) as usize
        );
        assert_eq!(
            probe_buffer_bytes(None, Some(100 * MIB)),
            (64 * MIB) as usize
        );
    }
}
