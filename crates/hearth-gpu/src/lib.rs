//! Hearth's GPU backend: WGSL compute kernels run through `wgpu` on Vulkan (NVIDIA, AMD, Intel,
//! and Mesa's lavapipe on machines without a GPU), Metal (Apple) and DX12 (Windows).
//!
//! - [`adapters`]: what this machine has ([`adapters::list`]) and the device rule
//!   ([`adapters::choose`]): `auto` never picks a CPU-type adapter, `gpu` takes the best there is.
//! - [`Gpu`] (`device`): one opened adapter, its queue and its compiled pipelines.
//! - `shaders` and `shaders/`: the WGSL. The matrix kernel is one template per weight type; each
//!   output element is summed in one fixed order whatever the batch (see `shaders/matmul.wgsl`),
//!   and block integer dot products are exact in i32.
//! - `kernels`: the host side of each kernel (buffers, dispatch sizes, lavapipe's 128 MiB
//!   binding limit).
//! - [`selftest`]: every kernel against the CPU scalar reference of `hearth-kernels` and
//!   `hearth-model`, for the tests and `hearth gpu-selftest`.

pub mod adapters;
mod device;
mod kernels;
pub mod selftest;
mod shaders;

pub use adapters::{choose, AdapterKind, AdapterSummary, DeviceChoice};
pub use device::{Gpu, GpuOptions};
pub use kernels::{GpuMatrix, RopeLayout};
pub use shaders::{all_sources, matmul_source, MatmulVariant, MATMUL_TYPES, TILES};

/// Errors of the GPU backend, in words a household can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no GPU found (wgpu sees no Vulkan, Metal or DX12 adapter{hint})")]
    NoAdapter { hint: &'static str },
    #[error("only a software renderer ({0}) was found; Hearth's CPU engine is faster than it. Use --device gpu to run on it anyway")]
    OnlySoftware(String),
    #[error("the GPU {name} could not be opened: {reason}")]
    Open { name: String, reason: String },
    #[error("the GPU has no {ty} kernel")]
    Unsupported { ty: hearth_gguf::GgmlType },
    #[error("bad shape: {0}")]
    Shape(String),
    #[error("the GPU reported an error: {0}")]
    Device(String),
    #[error(transparent)]
    Kernels(#[from] hearth_kernels::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
