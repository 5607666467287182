//! Run-time SIMD level, chosen once per process.
//!
//! Every kernel dispatches on [`level`]. The level never changes after the first call, which
//! is what makes results independent of batch size and thread count (see the crate docs): two
//! calls of [`crate::vec_dot`] on the same bytes always take the same code path.
//!
//! `HEARTH_SIMD=scalar` forces the portable path (for tests and for comparing against the
//! SIMD kernels), `HEARTH_SIMD=avx2` caps the level at [`Level::Avx2`] (for comparing the
//! AVX-512 VNNI kernels with the AVX2 ones on one machine), and on ARM `HEARTH_SIMD=neon` and
//! `HEARTH_SIMD=dotprod` cap it at [`Level::Neon`] and [`Level::NeonDot`]; any other value, or
//! none, means "best available".
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
    /// aarch64 with Advanced SIMD (NEON), which every 64-bit ARM CPU has: 128-bit vectors,
    /// fused multiply-add and f16 conversions.
    Neon,
    /// [`Level::Neon`] plus the dot-product extension (`sdot`/`udot`: four i8 × i8 products
    /// summed into each i32 lane in one instruction; Apple M1 and later, Cortex-A76 and later).
    NeonDot,
    /// [`Level::NeonDot`] plus the int8 matrix-multiply extension (`smmla`: a 2×8 by 8×2 i8
    /// product into 2×2 i32 lanes, two weight rows against two tokens; Apple M2 and later,
    /// Neoverse V1/N2). Kernels without an i8mm variant run their dot-product code here.
    NeonI8mm,
}

/// The level in force for this process.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let forced = std::env::var("HEARTH_SIMD").unwrap_or_default();
        match (forced.to_ascii_lowercase().as_str(), detect()) {
            ("scalar", _) => Level::Scalar,
            ("avx2", Level::Avx512Vnni) => Level::Avx2,
            ("neon", Level::NeonDot | Level::NeonI8mm) => Level::Neon,
            ("dotprod", Level::NeonI8mm) => Level::NeonDot,
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

    /// Whether this level runs NEON kernels (aarch64), with or without the extensions.
    #[inline]
    pub fn has_neon(self) -> bool {
        matches!(self, Level::Neon | Level::NeonDot | Level::NeonI8mm)
    }

    /// Every level, portable first; [`supported`] says which run on this CPU.
    pub const ALL: [Level; 6] = [
        Level::Scalar,
        Level::Avx2,
        Level::Avx512Vnni,
        Level::Neon,
        Level::NeonDot,
        Level::NeonI8mm,
    ];
}

/// The SIMD levels this CPU runs (every [`supported`] level but [`Level::Scalar`]), lowest
/// first: what the tests compare with the scalar reference.
pub fn simd_levels() -> Vec<Level> {
    Level::ALL
        .into_iter()
        .filter(|&l| l != Level::Scalar && supported(l))
        .collect()
}

/// Whether kernels of `level` can run on this CPU: [`Level::Scalar`] always, otherwise
/// [`detect`]'s level and the levels below it.
pub fn supported(level: Level) -> bool {
    match level {
        Level::Scalar => true,
        Level::Avx2 => detect().has_avx2(),
        Level::Avx512Vnni => detect() == Level::Avx512Vnni,
        Level::Neon => detect().has_neon(),
        Level::NeonDot => matches!(detect(), Level::NeonDot | Level::NeonI8mm),
        Level::NeonI8mm => detect() == Level::NeonI8mm,
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
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        if has!("neon") {
            if has!("dotprod") {
                if has!("i8mm") {
                    return Level::NeonI8mm;
                }
                return Level::NeonDot;
            }
            return Level::Neon;
        }
    }
    Level::Scalar
}
