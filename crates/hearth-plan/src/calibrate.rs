//! Calibration: the engine's measured speed on this machine turned into the two efficiencies the
//! speed model multiplies by (see the crate docs), so later estimates rest on a measurement
//! instead of a default.
//!
//! `hearth plan --calibrate` measures memory bandwidth and runs a small model; this module turns
//! those figures into a [`Calibration`] (stored as `calibration.json` in Hearth's data
//! directory) and says whether a stored one still describes the machine it is read on.

use serde::{Deserialize, Serialize};

use crate::{kv_read_bytes, KvType, ModelFacts};

/// What identifies a machine well enough to tell whether a calibration still applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineFacts {
    /// The CPU's model name (`/proc/cpuinfo`).
    pub cpu: String,
    /// Physical cores.
    pub cores: usize,
    /// SIMD level the kernels use.
    pub simd: String,
    /// Total RAM.
    pub memory_bytes: u64,
}

impl MachineFacts {
    /// Whether `other` is the same machine: same CPU, cores and SIMD level, and RAM within 2%
    /// (the kernel's `MemTotal` moves a little between boots).
    pub fn same_as(&self, other: &MachineFacts) -> bool {
        let ram = |m: &MachineFacts| m.memory_bytes as f64;
        self.cpu == other.cpu
            && self.cores == other.cores
            && self.simd == other.simd
            && (ram(self) - ram(other)).abs() <= 0.02 * ram(self).max(ram(other))
    }
}

/// The engine's measured efficiency on one machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// When it was measured, `YYYY-MM-DD` (UTC).
    pub date: String,
    pub machine: MachineFacts,
    /// Measured read bandwidth, the figure `tg_efficiency` is relative to.
    pub bandwidth_bytes_per_s: f64,
    /// The FLOP/s figure `pp_efficiency` is relative to.
    pub flops_per_s: f64,
    /// Share of `bandwidth_bytes_per_s` a generation step achieved.
    pub tg_efficiency: f64,
    /// Share of `flops_per_s` prompt processing achieved.
    pub pp_efficiency: f64,
    /// The model it was measured on.
    pub model: String,
    /// Threads the engine used.
    pub threads: usize,
    /// Measured generation speed, tokens per second.
    pub tg_tok_s: f64,
    /// Measured prompt speed, tokens per second.
    pub pp_tok_s: f64,
    /// Context position the generation was measured around (its KV is part of what a step
    /// reads).
    pub tg_ctx: usize,
}

/// Bytes one generation step reads for one user at position `ctx`: the weights a step touches
/// and the KV up to `ctx`.
pub fn tg_bytes_read(facts: &ModelFacts, ctx: usize) -> u64 {
    facts.read_bytes_per_token + kv_read_bytes(&facts.config, ctx, KvType::F16)
}

/// Generation efficiency from a measurement: `tok/s × bytes read per token ÷ bandwidth`.
pub fn tg_efficiency(facts: &ModelFacts, ctx: usize, tg_tok_s: f64, bandwidth: f64) -> f64 {
    tg_tok_s * tg_bytes_read(facts, ctx) as f64 / bandwidth
}

/// Prompt efficiency from a measurement: `tok/s × 2 × matrix parameters ÷ FLOP/s`.
pub fn pp_efficiency(facts: &ModelFacts, pp_tok_s: f64, flops: f64) -> f64 {
    pp_tok_s * 2.0 * facts.n_matmul_params as f64 / flops
}

/// The UTC date of a Unix time, `YYYY-MM-DD` (the proleptic Gregorian calendar, by days since
/// 1970-01-01 split into 400-year eras).
pub fn date_of_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_of_unix(0), "1970-01-01");
        assert_eq!(date_of_unix(951_782_400), "2000-02-29");
        assert_eq!(date_of_unix(1_709_164_800), "2024-02-29");
        assert_eq!(date_of_unix(1_798_761_599), "2026-12-31");
        assert_eq!(date_of_unix(4_102_444_800), "2100-01-01");
    }

    #[test]
    fn same_machine() {
        let a = MachineFacts {
            cpu: "Some CPU".into(),
            cores: 8,
            simd: "Avx2".into(),
            memory_bytes: 32 << 30,
        };
        let mut b = a.clone();
        b.memory_bytes -= 100 << 20;
        assert!(a.same_as(&b));
        b.cores = 4;
        assert!(!a.same_as(&b));
    }
}
