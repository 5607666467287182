//! Machines: the named profiles of common home hardware (`profiles.toml`, embedded), custom
//! machines from `--memory` and `--bandwidth`, and the parsers for those quantities.
//!
//! Detecting *this* machine is I/O and lives in `hearth-host`, which builds a [`Machine`] from
//! what it measured.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const GIB: f64 = (1u64 << 30) as f64;

/// What kind of memory the model lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A discrete GPU's VRAM. Hearth has no GPU engine yet: speeds are estimates for one.
    Gpu,
    /// Apple silicon's unified memory, of which the GPU may wire a share.
    Unified,
    /// System RAM of a CPU-only machine: what Hearth runs on today.
    Cpu,
}

impl Kind {
    /// `gpu`, `unified` or `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gpu => "gpu",
            Kind::Unified => "unified",
            Kind::Cpu => "cpu",
        }
    }
}

/// A machine to plan for.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Profile name (`rtx-4090`, `this`, `custom`).
    pub name: String,
    /// What people call it.
    pub label: String,
    pub kind: Kind,
    /// All of the memory the model lives in.
    pub memory_bytes: u64,
    /// What the OS, driver or display keeps back.
    pub reserved_bytes: u64,
    /// Peak memory bandwidth.
    pub bandwidth_bytes_per_s: f64,
    /// Peak FP32 throughput of the device that runs the model.
    pub flops_per_s: f64,
    /// Where the numbers come from.
    pub source: String,
}

impl Machine {
    /// Memory a model may use: all of it less what is kept back.
    pub fn usable_bytes(&self) -> u64 {
        self.memory_bytes.saturating_sub(self.reserved_bytes)
    }

    /// A machine described by flags: `memory` and `bandwidth` as given, nothing reserved, and a
    /// CPU-class compute figure (`flops_per_s`) that only the prompt-speed estimate uses.
    pub fn custom(memory_bytes: u64, bandwidth_bytes_per_s: f64, flops_per_s: f64) -> Machine {
        Machine {
            name: "custom".to_string(),
            label: "custom machine (--memory, --bandwidth)".to_string(),
            kind: Kind::Cpu,
            memory_bytes,
            reserved_bytes: 0,
            bandwidth_bytes_per_s,
            flops_per_s,
            source: "command-line flags".to_string(),
        }
    }
}

/// One entry of `profiles.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEntry {
    name: String,
    label: String,
    kind: Kind,
    memory_gib: f64,
    bandwidth_gb_s: f64,
    tflops: f64,
    #[serde(default)]
    reserved_gib: f64,
    gpu_share: Option<f64>,
    source: String,
}

#[derive(Debug, Deserialize)]
struct ProfilesFile {
    profile: Vec<ProfileEntry>,
}

/// The named machine profiles.
#[derive(Clone, Debug)]
pub struct Profiles {
    machines: Vec<Machine>,
}

impl Profiles {
    /// The profiles shipped with Hearth.
    pub fn builtin() -> Profiles {
        // The embedded file is checked by this crate's tests, so it always parses.
        Profiles::from_toml(include_str!("../profiles.toml"))
            .expect("the embedded profiles.toml is valid (checked by the tests)")
    }

    /// Reads profiles from TOML text (the format of `profiles.toml`).
    pub fn from_toml(text: &str) -> Result<Profiles> {
        let file: ProfilesFile =
            toml::from_str(text).map_err(|e| Error::Profiles(e.to_string()))?;
        let mut machines = Vec::with_capacity(file.profile.len());
        for p in file.profile {
            // Also false for NaN, which a TOML float can be.
            let positive = |v: f64| v.is_finite() && v > 0.0;
            let bad = |what: &str, v: f64| {
                Error::Profiles(format!("profile {:?}: {what} is {v}", p.name))
            };
            if !positive(p.memory_gib) {
                return Err(bad("memory_gib (expected > 0)", p.memory_gib));
            }
            if !positive(p.bandwidth_gb_s) {
                return Err(bad("bandwidth_gb_s (expected > 0)", p.bandwidth_gb_s));
            }
            if !positive(p.tflops) {
                return Err(bad("tflops (expected > 0)", p.tflops));
            }
            if !(0.0..p.memory_gib).contains(&p.reserved_gib) {
                return Err(bad(
                    "reserved_gib (expected 0 up to the memory)",
                    p.reserved_gib,
                ));
            }
            let memory_bytes = (p.memory_gib * GIB) as u64;
            let reserved_bytes = match (p.kind, p.gpu_share) {
                (Kind::Unified, Some(share)) if share > 0.0 && share <= 1.0 => {
                    memory_bytes - (memory_bytes as f64 * share) as u64
                }
                (Kind::Unified, share) => {
                    return Err(Error::Profiles(format!(
                        "profile {:?}: a unified-memory profile needs gpu_share in (0, 1], found \
                         {share:?}",
                        p.name
                    )))
                }
                (_, Some(_)) => {
                    return Err(Error::Profiles(format!(
                        "profile {:?}: gpu_share applies to unified memory only, kind is {}",
                        p.name,
                        p.kind.name()
                    )))
                }
                (_, None) => (p.reserved_gib * GIB) as u64,
            };
            if machines.iter().any(|m: &Machine| m.name == p.name) {
                return Err(Error::Profiles(format!(
                    "profile {:?} appears twice",
                    p.name
                )));
            }
            machines.push(Machine {
                name: p.name,
                label: p.label,
                kind: p.kind,
                memory_bytes,
                reserved_bytes,
                bandwidth_bytes_per_s: p.bandwidth_gb_s * 1e9,
                flops_per_s: p.tflops * 1e12,
                source: p.source,
            });
        }
        Ok(Profiles { machines })
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Result<&Machine> {
        self.machines
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::UnknownProfile {
                found: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Every profile's name, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.machines.iter().map(|m| m.name.as_str()).collect()
    }

    /// Every profile, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Machine> {
        self.machines.iter()
    }
}

/// An NVIDIA GPU as `nvidia-smi --query-gpu=name,memory.total,memory.used
/// --format=csv,noheader,nounits` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectedGpu {
    /// The product name, e.g. `NVIDIA GeForce RTX 4090`.
    pub name: String,
    /// All of its memory.
    pub memory_bytes: u64,
    /// Memory other processes (and the driver) already use.
    pub used_bytes: u64,
}

/// Reads `nvidia-smi`'s CSV: one `name, total MiB, used MiB` line per GPU.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<DetectedGpu>> {
    let mut gpus = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || {
            Error::Profiles(format!(
                "nvidia-smi line {line:?}: expected \"name, total MiB, used MiB\""
            ))
        };
        // The name may itself hold commas; the two numbers are the last fields.
        let mut fields = line.rsplitn(3, ',').map(str::trim);
        let used = fields.next().ok_or_else(bad)?;
        let total = fields.next().ok_or_else(bad)?;
        let name = fields.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
        let mib = |v: &str| v.parse::<u64>().map(|m| m << 20).map_err(|_| bad());
        gpus.push(DetectedGpu {
            name: name.to_string(),
            memory_bytes: mib(total)?,
            used_bytes: mib(used)?,
        });
    }
    Ok(gpus)
}

impl DetectedGpu {
    /// The GPU as a machine to plan for: its memory less what is in use, and the bandwidth and
    /// compute of the profile whose label starts with its name (`None` for an unknown GPU,
    /// whose speed is then not estimated).
    pub fn machine(&self, profiles: &Profiles) -> (Machine, Option<String>) {
        let profile = profiles.iter().find(|m| {
            m.kind == Kind::Gpu
                && m.label
                    .to_ascii_lowercase()
                    .starts_with(&self.name.to_ascii_lowercase())
        });
        let machine = Machine {
            name: "this-gpu".to_string(),
            label: self.name.clone(),
            kind: Kind::Gpu,
            memory_bytes: self.memory_bytes,
            reserved_bytes: self.used_bytes.min(self.memory_bytes),
            bandwidth_bytes_per_s: profile.map_or(0.0, |p| p.bandwidth_bytes_per_s),
            flops_per_s: profile.map_or(0.0, |p| p.flops_per_s),
            source: match profile {
                Some(p) => format!(
                    "nvidia-smi (memory total and in use); speed figures of profile {}: {}",
                    p.name, p.source
                ),
                None => "nvidia-smi (memory total and in use); no profile for this GPU, so no \
                         speed figures"
                    .to_string(),
            },
        };
        (machine, profile.map(|p| p.name.clone()))
    }
}

/// Splits `24GiB` into `(24.0, "gib")`.
fn split_number(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let value: f64 = s[..end].parse().ok()?;
    Some((value, s[end..].trim().to_ascii_lowercase()))
}

fn unit_factor(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => GIB,
        "tib" => GIB * 1024.0,
        _ => return None,
    })
}

/// Reads a size: `24GiB`, `16GB`, `100MiB`, `1.5TiB` or a bare byte count. `GB` is decimal,
/// `GiB` binary.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let bad = || Error::BadQuantity {
        what: "memory size",
        found: s.to_string(),
        example: "24GiB or 16GB",
    };
    let (value, unit) = split_number(s).ok_or_else(bad)?;
    let bytes = value * unit_factor(&unit).ok_or_else(bad)?;
    // Zero memory, or more than an exabyte, is a typo.
    if !(1.0..=1e18).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Reads a bandwidth: `1008GB/s`, `89.6 GB/s`, `1.8TB/s`, in bytes per second.
pub fn parse_rate(s: &str) -> Result<f64> {
    let bad = || Error::BadQuantity {
        what: "bandwidth",
        found: s.to_string(),
        example: "1008GB/s",
    };
    let (value, unit) = split_number(s).ok_or_else(bad)?;
    let unit = unit.strip_suffix("/s").ok_or_else(bad)?;
    let rate = value * unit_factor(unit).ok_or_else(bad)?;
    if !(1.0..=1e16).contains(&rate) {
        return Err(bad());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_cover_the_issue_list() {
        let p = Profiles::builtin();
        for name in [
            "rtx-4090",
            "rtx-3090",
            "rtx-4060-ti-16",
            "rtx-5090",
            "m2-ultra-192",
            "m3-ultra-512",
            "m4-pro-24",
            "m4-max-128",
            "pc-16",
            "pc-32",
            "pc-64",
        ] {
            let m = p.get(name).unwrap();
            assert!(
                m.usable_bytes() > 0 && m.usable_bytes() < m.memory_bytes,
                "{name}"
            );
            assert!(!m.source.is_empty());
        }
        let m4090 = p.get("rtx-4090").unwrap();
        assert_eq!(m4090.memory_bytes, 24 << 30);
        assert_eq!(m4090.bandwidth_bytes_per_s, 1008e9);
        // macOS lets the GPU wire 3/4 of 64 GB and up, about 2/3 below.
        let ultra = p.get("m3-ultra-512").unwrap();
        assert_eq!(ultra.usable_bytes(), 384 << 30);
        let pro = p.get("m4-pro-24").unwrap();
        let share = pro.usable_bytes() as f64 / pro.memory_bytes as f64;
        assert!((share - 0.667).abs() < 1e-3, "{share}");
    }

    #[test]
    fn unknown_profile_lists_the_known_ones() {
        let e = Profiles::builtin().get("rtx-9999").unwrap_err().to_string();
        assert!(e.contains("rtx-9999") && e.contains("rtx-4090"), "{e}");
    }

    #[test]
    fn bad_profiles_are_rejected() {
        let unified_without_share = r#"
            [[profile]]
            name = "x"
            label = "x"
            kind = "unified"
            memory_gib = 16
            bandwidth_gb_s = 100
            tflops = 1
            source = "s"
        "#;
        assert!(Profiles::from_toml(unified_without_share).is_err());
        let zero_memory = unified_without_share
            .replace("unified", "cpu")
            .replace("memory_gib = 16", "memory_gib = 0");
        assert!(Profiles::from_toml(&zero_memory).is_err());
    }

    #[test]
    fn nvidia_smi_lines() {
        let text = "NVIDIA GeForce RTX 4090, 24564, 1024\nNVIDIA H100 80GB HBM3, 81559, 0\n\n";
        let gpus = parse_nvidia_smi(text).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(gpus[0].memory_bytes, 24564 << 20);
        assert_eq!(gpus[0].used_bytes, 1024 << 20);
        let profiles = Profiles::builtin();
        let (m, profile) = gpus[0].machine(&profiles);
        assert_eq!(profile.as_deref(), Some("rtx-4090"));
        assert_eq!(m.kind, Kind::Gpu);
        assert_eq!(m.usable_bytes(), (24564 - 1024) << 20);
        assert_eq!(m.bandwidth_bytes_per_s, 1008e9);
        let (unknown, none) = DetectedGpu {
            name: "NVIDIA Quadro Imaginary".to_string(),
            ..gpus[0].clone()
        }
        .machine(&profiles);
        assert!(none.is_none() && unknown.bandwidth_bytes_per_s == 0.0);
        for bad in ["RTX, lots, 0", "4090", ", 1, 2"] {
            assert!(parse_nvidia_smi(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_bytes("24GiB").unwrap(), 24 << 30);
        assert_eq!(parse_bytes("16GB").unwrap(), 16_000_000_000);
        assert_eq!(parse_bytes("100MiB").unwrap(), 100 << 20);
        assert_eq!(parse_bytes(" 1.5 gib ").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_rate("1008GB/s").unwrap(), 1008e9);
        assert_eq!(parse_rate("89.6 GB/s").unwrap(), 89.6e9);
        for bad in ["", "GiB", "24 parsecs", "-3GB", "0GB", "1.2.3GB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        for bad in ["1008GB", "fast/s", "0GB/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
