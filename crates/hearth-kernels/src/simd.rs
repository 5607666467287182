//! Run-time SIMD level, chosen once per process.
//!
//! Every kernel dispatches on [`level`]. The level never changes after the first call, which
//! is what makes results independent of batch size and thread count (see the crate docs): two
//! calls of [`crate::vec_dot`] on the same bytes always take the same code path.
//!
//! `HEARTH_SIMD=scalar` forces the portable path (for tests and for comparing against the
//! SIMD kernels), `HEARTH_SIMD=avx2` caps the level at [`Level::Avx2`] (for comparing the
//! AVX-512 VNNI kernels with the AVX2 ones on one machine); any other value, or none, means
//! "best available".
//!
//! Every level gives the same bits for the same inputs. [`Level::Avx512Vnni`] changes only
//! how exact integer sums are formed: the 32-element formats' `maddubs` + `madd` becomes one
//! `vpdpbusd` (in `vec_dot` and the tiles), and the Q4_K/Q5_K/Q6_K `madd` + add by sub-block
//! scales becomes one `vpdpwssd` (in `vec_dot` and the tiles). Those i32 results are exact on both levels, and everything
//! in f32 is the same code.

use std::sync::OnceLock;

/// The instruction set the kernels use, chosen once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Portable Rust, every platform.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (Haswell and later, Zen and later).
    Avx2,
    /// [`Level::Avx2`] plus AVX-512 VNNI, VL and BW (Ice Lake and later, Zen 4 and later):
    /// the 256-bit `vpdpbusd` sums four u8 × i8 products per i32 lane in one instruction
    /// (`vpdpwssd` two i16 × i16), and AVX-512VL's 32 ymm registers allow bigger tiles.
    /// Kernels without a VNNI variant (floats, Q2_K/Q3_K `vec_dot`, the Q8 encoders) run their
    /// AVX2 code at this level.
    Avx512Vnni,
    // NEON: an aarch64 level would go here, detected with
    // `std::arch::is_aarch64_feature_detected!("neon")` (and "dotprod" for `sdot`).
}

/// The level in force for this process.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let forced = std::env::var("HEARTH_SIMD").unwrap_or_default();
        match (forced.to_ascii_lowercase().as_str(), detect()) {
            ("scalar", _) => Level::Scalar,
            ("avx2", Level::Avx512Vnni) => Level::Avx2,
            (_, best) => best,
        }
    })
}

impl Level {
    /// Whether this level runs the AVX2 (+FMA, F16C) kernels, alone or under VNNI ones.
    #[inline]
    pub fn has_avx2(self) -> bool {
        matches!(self, Level::Avx2 | Level::Avx512Vnni)
    }
}

/// Whether kernels of `level` can run on this CPU: [`Level::Scalar`] always, otherwise
/// [`detect`]'s level and the levels below it.
pub fn supported(level: Level) -> bool {
    match level {
        Level::Scalar => true,
        Level::Avx2 => detect().has_avx2(),
        Level::Avx512Vnni => detect() == Level::Avx512Vnni,
    }
}

/// The best level this CPU supports, ignoring `HEARTH_SIMD`.
pub fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            if is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
            {
                return Level::Avx512Vnni;
            }
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// [`crate::vec_dot`] on an explicit level, for comparing the SIMD kernels with the portable
/// ones in one process. Covers the float, legacy and K-quant block types; returns `None` for
/// other types, or when this CPU does not [support](supported) `level`.
///
/// # Panics
/// If `w` or `x` is not exactly one row of `n` elements of its type (this is a test and
/// benchmark helper, so sizes are checked even in release builds).
pub fn vec_dot_at(
    level: Level,
    weight: crate::GgmlType,
    n: usize,
    w: &[u8],
    x: &[u8],
) -> Option<f32> {
    use crate::GgmlType::*;
    if !supported(level) {
        return None;
    }
    assert_eq!(w.len(), crate::row_bytes(weight, n), "weight row size");
    let act = crate::activation_type(weight).ok()?;
    assert_eq!(x.len(), crate::row_bytes(act, n), "activation row size");
    match weight {
        F32 | F16 | BF16 => Some(crate::float::vec_dot_at(level, weight, n, w, x)),
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => Some(crate::legacy::vec_dot_at(level, weight, n, w, x)),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => {
            Some(crate::kquants::vec_dot_at(level, weight, n, w, x))
        }
        _ => None,
    }
}

/// [`crate::quantize_row`] on an explicit level (the activation formats Q8_0 / Q8_1 have
/// SIMD encoders that must give the same bytes as the portable ones). Other types ignore the
/// level. Returns `None` when this CPU does not [support](supported) `level`.
pub fn quantize_row_at(
    level: Level,
    ty: crate::GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Option<crate::Result<()>> {
    use crate::GgmlType::*;
    if !supported(level) {
        return None;
    }
    match ty {
        Q8_0 | Q8_1 => {
            let block = ty.block_size();
            if !src.len().is_multiple_of(block) || dst.len() != crate::row_bytes(ty, src.len()) {
                return Some(crate::quantize_row(ty, src, dst)); // reports the size error
            }
            Some(crate::legacy::quantize_at(level, ty, src, dst))
        }
        _ => Some(crate::quantize_row(ty, src, dst)),
    }
}
