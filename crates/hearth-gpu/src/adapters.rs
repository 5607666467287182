//! Which GPUs this machine has, and which one Hearth uses.
//!
//! [`choose`] is the whole device rule, a pure function of the adapter list so that it is
//! tested on made-up machines: `auto` takes a real GPU and never a CPU-type adapter (lavapipe,
//! llvmpipe, WARP), which would be slower than Hearth's own CPU kernels; `gpu` takes the best
//! adapter there is, a CPU-type one included when it is the only one (that is how CI runs the
//! kernels on lavapipe).

use std::fmt;

/// What kind of device an adapter drives, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdapterKind {
    /// A graphics card of its own, with its own memory.
    Discrete,
    /// A GPU sharing the CPU's memory (laptops, Apple Silicon).
    Integrated,
    /// A GPU behind a virtual machine's layer.
    Virtual,
    /// The driver says nothing about what it is.
    Other,
    /// A driver that runs on the CPU (lavapipe, llvmpipe, WARP).
    Cpu,
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdapterKind::Discrete => "discrete GPU",
            AdapterKind::Integrated => "integrated GPU",
            AdapterKind::Virtual => "virtual GPU",
            AdapterKind::Other => "unknown kind",
            AdapterKind::Cpu => "CPU (software)",
        })
    }
}

impl From<wgpu::DeviceType> for AdapterKind {
    fn from(t: wgpu::DeviceType) -> AdapterKind {
        match t {
            wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
            wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
            wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
            wgpu::DeviceType::Cpu => AdapterKind::Cpu,
            wgpu::DeviceType::Other => AdapterKind::Other,
        }
    }
}

/// One adapter as the planner and `hearth plan --machine this` see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    /// "Vulkan", "Metal", "Dx12".
    pub backend: String,
    pub kind: AdapterKind,
    /// Device-local memory in bytes, where the backend reports it (Vulkan does).
    pub memory_bytes: Option<u64>,
    /// The driver's own name and version, for bug reports.
    pub driver: String,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.kind, self.backend)?;
        match self.memory_bytes {
            Some(b) => write!(f, ", {:.1} GiB", b as f64 / (1u64 << 30) as f64)?,
            None => write!(f, ", memory not reported")?,
        }
        if !self.driver.is_empty() {
            write!(f, ", driver {}", self.driver)?;
        }
        f.write_str(")")
    }
}

/// `--device cpu|gpu|auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    Cpu,
    Gpu,
    #[default]
    Auto,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<DeviceChoice, String> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(format!("unknown device {other:?}: use cpu, gpu or auto")),
        }
    }
}

/// The adapter `choice` runs on, as an index into `adapters`, or `None` for the CPU engine.
///
/// Best means: kind first (discrete, integrated, virtual, other, CPU), then the most memory
/// (unknown counts as none), then the earliest listed, so the answer never depends on ties.
pub fn choose(choice: DeviceChoice, adapters: &[AdapterSummary]) -> Option<usize> {
    let candidates = adapters.iter().enumerate().filter(|(_, a)| match choice {
        DeviceChoice::Cpu => false,
        DeviceChoice::Auto => a.kind != AdapterKind::Cpu,
        DeviceChoice::Gpu => true,
    });
    candidates
        .min_by(|(i, a), (j, b)| {
            a.kind
                .cmp(&b.kind)
                .then(
                    b.memory_bytes
                        .unwrap_or(0)
                        .cmp(&a.memory_bytes.unwrap_or(0)),
                )
                .then(i.cmp(j))
        })
        .map(|(i, _)| i)
}

/// The instance every adapter comes from: Vulkan, Metal and DX12 only (no GL, no browser).
pub(crate) fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds, with the summary the rule and the planner read.
pub(crate) fn enumerate(instance: &wgpu::Instance) -> Vec<(wgpu::Adapter, AdapterSummary)> {
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            let summary = AdapterSummary {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                kind: info.device_type.into(),
                memory_bytes: device_memory(&a),
                driver: [info.driver.as_str(), info.driver_info.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            (a, summary)
        })
        .collect()
}

/// The adapters of this machine, for `hearth plan --machine this`.
pub fn list() -> Vec<AdapterSummary> {
    enumerate(&instance()).into_iter().map(|(_, s)| s).collect()
}

/// The largest device-local heap, read from Vulkan (wgpu has no portable query; Metal and DX12
/// report `None` until the planner needs them).
#[cfg(not(target_vendor = "apple"))]
#[allow(unsafe_code)]
fn device_memory(adapter: &wgpu::Adapter) -> Option<u64> {
    // SAFETY: the hal adapter is only read (its instance and physical-device handles), never
    // destroyed, and the guard is dropped before this function returns.
    let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
    let instance = hal.shared_instance().raw_instance();
    // SAFETY: the physical device handle belongs to this live instance (both come from the
    // same hal adapter).
    let props =
        unsafe { instance.get_physical_device_memory_properties(hal.raw_physical_device()) };
    // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT is bit 0.
    props.memory_heaps[..props.memory_heap_count as usize]
        .iter()
        .filter(|h| h.flags.as_raw() & 1 != 0)
        .map(|h| h.size)
        .max()
}

#[cfg(target_vendor = "apple")]
fn device_memory(_adapter: &wgpu::Adapter) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, kind: AdapterKind, gib: Option<u64>) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            backend: "Vulkan".into(),
            kind,
            memory_bytes: gib.map(|g| g << 30),
            driver: String::new(),
        }
    }

    #[test]
    fn auto_never_picks_a_cpu_adapter() {
        let only_cpu = [a("llvmpipe", AdapterKind::Cpu, Some(64))];
        assert_eq!(choose(DeviceChoice::Auto, &only_cpu), None);
        let mixed = [
            a("llvmpipe", AdapterKind::Cpu, Some(64)),
            a("Intel UHD", AdapterKind::Integrated, Some(2)),
        ];
        assert_eq!(choose(DeviceChoice::Auto, &mixed), Some(1));
        assert_eq!(choose(DeviceChoice::Auto, &[]), None);
    }

    #[test]
    fn gpu_takes_the_best_and_a_cpu_adapter_only_when_alone() {
        let only_cpu = [a("llvmpipe", AdapterKind::Cpu, Some(64))];
        assert_eq!(choose(DeviceChoice::Gpu, &only_cpu), Some(0));
        let machine = [
            a("llvmpipe", AdapterKind::Cpu, Some(64)),
            a("Intel UHD", AdapterKind::Integrated, Some(32)),
            a("RTX 3060", AdapterKind::Discrete, Some(12)),
            a("RTX 4090", AdapterKind::Discrete, Some(24)),
        ];
        assert_eq!(choose(DeviceChoice::Gpu, &machine), Some(3));
        assert_eq!(choose(DeviceChoice::Auto, &machine), Some(3));
        assert_eq!(choose(DeviceChoice::Gpu, &[]), None);
    }

    #[test]
    fn cpu_choice_and_ties() {
        let twins = [
            a("A", AdapterKind::Discrete, Some(8)),
            a("B", AdapterKind::Discrete, Some(8)),
            a("C", AdapterKind::Discrete, None),
        ];
        assert_eq!(choose(DeviceChoice::Cpu, &twins), None);
        assert_eq!(choose(DeviceChoice::Gpu, &twins), Some(0));
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }
}
