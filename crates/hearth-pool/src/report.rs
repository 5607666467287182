//! What a member tells the head about itself, and what the head measured of the link.

use serde::{Deserialize, Serialize};

/// A member's own account of its machine (from `hearth-host`, measured on the member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Its host name, or the name the keeper gave it.
    pub name: String,
    /// The Hearth version it runs.
    pub hearth_version: String,
    /// Physical memory.
    pub memory_bytes: u64,
    /// Memory free for a model now (`MemAvailable`).
    pub available_bytes: u64,
    /// Memory read bandwidth, bytes per second.
    pub bandwidth_bytes_per_s: f64,
    /// Peak arithmetic, FLOP per second, as the planner estimates it.
    pub flops_per_s: f64,
    /// Where the bandwidth comes from: "calibrated" (a stored `plan --calibrate`), "measured"
    /// (a short probe at start) or a profile's name.
    pub bandwidth_source: String,
    /// Physical cores.
    pub cores: usize,
    /// NVIDIA GPUs, where `nvidia-smi` sees them.
    pub gpus: Vec<Gpu>,
}

/// One GPU of a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    pub name: String,
    pub memory_bytes: u64,
}

/// A member as the head sees it: its report and the link, as stored for `hearth pool list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkReport {
    pub report: Report,
    /// The last heartbeat's round trip, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Bytes per second from the head to the member, measured when the link opened.
    pub throughput_bytes_per_s: Option<f64>,
    /// The address the member's link comes from.
    pub addr: Option<String>,
}
