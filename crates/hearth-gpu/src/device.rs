//! One opened adapter: the device, its queue, what it offers (subgroups, 16-bit floats, binding
//! sizes), and the pipelines compiled so far.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::adapters::{self, AdapterKind, AdapterSummary, DeviceChoice};
use crate::{Error, Result};

/// How to open the device.
#[derive(Clone, Copy, Debug)]
pub struct GpuOptions {
    /// Use subgroup operations where the adapter has them (tests turn them off to check the
    /// path every adapter has).
    pub subgroups: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions { subgroups: true }
    }
}

/// An opened GPU.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    summary: AdapterSummary,
    subgroups: bool,
    shader_f16: bool,
    /// The largest storage binding the device allows (128 MiB on lavapipe).
    pub(crate) max_binding: u64,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// A text replacement applied to every shader compiled from now on, so the tests can break
    /// a kernel on purpose and see its check fail.
    patch: Mutex<Option<(String, String)>>,
    /// The first device error raised outside any error scope, not yet reported.
    escaped: Arc<Mutex<Option<String>>>,
}

/// The shaders' byte offsets are u32: with every binding at most 2 GiB, an offset inside one
/// (plus a row's or block's length) can never wrap, whatever the driver allows (Metal offers
/// far more on large Macs).
pub(crate) const MAX_BINDING: u64 = 1 << 31;

/// The largest binding the kernels use: the device's limits, capped at [`MAX_BINDING`] and
/// rounded down to whole words.
pub(crate) fn binding_limit(max_storage_binding: u64, max_buffer: u64) -> u64 {
    max_storage_binding.min(max_buffer).min(MAX_BINDING) & !3
}

/// How long one submission may run before the device is taken for lost. A decoding step takes
/// milliseconds; the longest self-test dispatch on lavapipe takes about a second.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(120);

impl Gpu {
    /// Opens the adapter the device rule picks, or `Ok(None)` when the rule says the CPU
    /// (`--device cpu`, or `auto` on a machine without a real GPU).
    pub fn open(choice: DeviceChoice, opts: GpuOptions) -> Result<Option<Gpu>> {
        let instance = adapters::instance();
        let mut found = adapters::enumerate(&instance);
        let summaries: Vec<AdapterSummary> = found.iter().map(|(_, s)| s.clone()).collect();
        let Some(i) = adapters::choose(choice, &summaries) else {
            return match choice {
                DeviceChoice::Gpu => Err(Error::NoAdapter {
                    hint: "; on Linux install the Vulkan loader and your GPU's Vulkan driver",
                }),
                _ => Ok(None),
            };
        };
        let (adapter, summary) = found.swap_remove(i);
        Self::from_adapter(adapter, summary, opts).map(Some)
    }

    /// Opens a given adapter.
    fn from_adapter(
        adapter: wgpu::Adapter,
        summary: AdapterSummary,
        opts: GpuOptions,
    ) -> Result<Gpu> {
        let offered = adapter.features();
        let mut features = wgpu::Features::empty();
        let subgroups = opts.subgroups && offered.contains(wgpu::Features::SUBGROUP);
        if subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        let shader_f16 = offered.contains(wgpu::Features::SHADER_F16);
        if shader_f16 {
            features |= wgpu::Features::SHADER_F16;
        }
        // The adapter's own limits, not WebGPU's defaults: storage bindings and buffers as large
        // as the driver allows, so big weight matrices need fewer pieces.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("hearth"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Open {
            name: summary.name.clone(),
            reason: e.to_string(),
        })?;
        let max_binding = binding_limit(
            limits.max_storage_buffer_binding_size,
            limits.max_buffer_size,
        );
        // A validation error outside a scope would end the process through wgpu's default
        // handler; every op runs inside scopes, and anything that still escapes (from another
        // thread's work, say) is kept and returned by the next op.
        let escaped = Arc::new(Mutex::new(None));
        let sink = escaped.clone();
        device.on_uncaptured_error(Arc::new(move |e| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        Ok(Gpu {
            device,
            queue,
            summary,
            subgroups,
            shader_f16,
            max_binding,
            pipelines: Mutex::new(HashMap::new()),
            patch: Mutex::new(None),
            escaped,
        })
    }

    /// The adapter this runs on.
    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Whether this is a software renderer (lavapipe, llvmpipe, WARP).
    pub fn is_software(&self) -> bool {
        self.summary.kind == AdapterKind::Cpu
    }

    /// Whether the kernels use subgroup operations on this device.
    pub fn uses_subgroups(&self) -> bool {
        self.subgroups
    }

    /// Whether the adapter offers 16-bit floats in shaders.
    pub fn has_shader_f16(&self) -> bool {
        self.shader_f16
    }

    /// The largest storage binding, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

    /// Lowers the largest binding the kernels use to `bytes` (whole words), so the tests can
    /// reach the limits of a large GPU with small data.
    #[doc(hidden)]
    pub fn limit_bindings(&mut self, bytes: u64) {
        self.max_binding = self.max_binding.min(bytes & !3);
    }

    /// Replaces `from` by `to` in every shader compiled from now on (`None`: no more).
    #[doc(hidden)]
    pub fn set_source_patch(&self, patch: Option<(&str, &str)>) {
        *self.patch.lock().expect("patch") = patch.map(|(a, b)| (a.to_string(), b.to_string()));
    }

    /// The compute pipeline of `source` (entry point `main`), compiled once per `key`.
    pub(crate) fn pipeline(
        &self,
        key: &str,
        source: impl FnOnce() -> String,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let patch = self.patch.lock().expect("patch").clone();
        let key = &match &patch {
            Some((from, to)) => format!("{key} with {from:?} -> {to:?}"),
            None => key.to_string(),
        };
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(key) {
            return Ok(p.clone());
        }
        let source = || match &patch {
            Some((from, to)) => source().replace(from.as_str(), to),
            None => source(),
        };
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(source().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("shader {key}: {e}")));
        }
        let p = Arc::new(pipeline);
        self.pipelines
            .lock()
            .expect("pipeline cache")
            .insert(key.to_string(), p.clone());
        Ok(p)
    }

    /// Runs `f` (which records and submits work) inside validation and out-of-memory error
    /// scopes, so a device error comes back as [`Error::Device`] instead of a panic.
    pub(crate) fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let valid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let valid = pollster::block_on(valid.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = valid.or(oom) {
            return Err(Error::Device(format!("{what}: {e}")));
        }
        let escaped = self
            .escaped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(e) = escaped {
            return Err(Error::Device(e));
        }
        out
    }

    /// Submits `encoder` and waits for it.
    pub(crate) fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.queue.submit([encoder.finish()]);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: Some(SUBMIT_TIMEOUT),
            })
            .map_err(|e| Error::Device(e.to_string()))?;
        Ok(())
    }

    /// Copies `buffer` (a `STORAGE | COPY_SRC` buffer) back to the host as f32.
    pub(crate) fn read_f32(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>> {
        let size = buffer.size();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.submit_and_wait(encoder)?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(SUBMIT_TIMEOUT),
            })
            .map_err(|e| Error::Device(e.to_string()))?;
        rx.recv()
            .map_err(|e| Error::Device(e.to_string()))?
            .map_err(|e| Error::Device(e.to_string()))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Device(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_stay_far_below_u32_offsets() {
        // Metal on a large Mac: both limits far over 4 GiB.
        assert_eq!(binding_limit(1 << 40, 1 << 40), 1 << 31);
        assert_eq!(binding_limit(u32::MAX as u64, u64::MAX), 1 << 31);
        // lavapipe: 128 MiB.
        assert_eq!(binding_limit(128 << 20, 1 << 32), 128 << 20);
        assert_eq!(binding_limit(1001, 1 << 32), 1000);
    }
}
