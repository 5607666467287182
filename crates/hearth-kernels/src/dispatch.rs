//! The one place that maps a SIMD level to kernels. Every kernel family has a portable
//! definition in `formats` and, per instruction set, kernels in a folder of their own (`x86/`,
//! `arm/`);
//! the functions here take the [`Level`] the process chose once ([`crate::simd::level`]) or,
//! for tests, an explicit one, and call that level's kernel. Adding an instruction set means
//! adding its folder and one arm per function here.
//!
//! Each function's `level` must be [`Level::Scalar`] or one that [`crate::simd::supported`]
//! accepts on this CPU: the SIMD arms rely on it for their `unsafe` calls.

use crate::formats::{exp, float, iq23, iquants, kquants, legacy};
use crate::simd::Level;
use crate::types::Result;
use crate::types::{check, row_bytes, Error, Tile};
use hearth_gguf::{GgmlType, QK_K};

// ---------------------------------------------------------------------------------------------
// Rows of any type, on the process's level
// ---------------------------------------------------------------------------------------------

/// Decodes one row of `dst.len()` elements of type `ty` from `src` into f32.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    use GgmlType::*;
    check(ty, dst.len(), src.len())?;
    match ty {
        F32 | F16 | BF16 => float_dequantize(crate::simd::level(), ty, src, dst),
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => legacy::dequantize(ty, src, dst),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => kquants::dequantize(ty, src, dst),
        IQ4_NL | IQ4_XS | MXFP4 => iquants::dequantize(ty, src, dst),
        IQ2_XXS | IQ2_XS | IQ3_XXS | IQ3_S => iq23::dequantize(ty, src, dst),
        other => return Err(Error::Unsupported(other)),
    }
    Ok(())
}

/// Encodes one row of f32 `src` as `ty` into `dst`. Used for activations (`ty` is an
/// [`activation_type`](crate::activation_type)) and, in tests, to build weights; for F32/F16/BF16 it is a plain
/// conversion.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    use GgmlType::*;
    check(ty, src.len(), dst.len())?;
    match ty {
        F32 | F16 | BF16 => float::quantize(ty, src, dst)?,
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => {
            legacy_quantize(crate::simd::level(), ty, src, dst)?
        }
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => kquants::quantize(ty, src, dst)?,
        IQ4_NL | IQ4_XS | MXFP4 => iquants::quantize(ty, src, dst),
        other => return Err(Error::Unsupported(other)),
    }
    Ok(())
}

/// Dot product of one weight row `w` (type `weight`, `n` elements) with one activation row `x`
/// already encoded as [`activation_type`](crate::activation_type)`(weight)`.
///
/// Sizes are the caller's invariant (checked in debug builds): this runs ~n_rows × n_tokens
/// times per matmul.
#[inline]
pub fn vec_dot(weight: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    use GgmlType::*;
    debug_assert_eq!(w.len(), row_bytes(weight, n));
    match weight {
        F32 | F16 | BF16 => float_dot(crate::simd::level(), weight, n, w, x),
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => legacy_dot(crate::simd::level(), weight, n, w, x),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => kquant_dot(crate::simd::level(), weight, n, w, x),
        IQ4_NL | IQ4_XS | MXFP4 => iquant_dot(crate::simd::level(), weight, n, w, x),
        IQ2_XXS | IQ2_XS | IQ3_XXS | IQ3_S => iq23_dot(crate::simd::level(), weight, n, w, x),
        // `activation_type` refuses every other type before a matmul can be built.
        other => unreachable!("vec_dot on unsupported type {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The 32-element formats (Q4_0 … Q8_0, Q8_1)
// ---------------------------------------------------------------------------------------------

/// Encodes a row of a 32-element format (weights for tests, or Q8_0 / Q8_1 activations).
/// Every level gives the same bytes.
pub(crate) fn legacy_quantize(
    level: Level,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<()> {
    if matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1) {
        let with_sum = ty == GgmlType::Q8_1;
        match level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Level::Avx2` / `Level::Avx512Vnni` come only from `simd::detect`, which
            // checked AVX2, FMA and F16C (the encoder has no integer dot: AVX2 at both levels).
            Level::Avx2 | Level::Avx512Vnni => unsafe {
                crate::x86::legacy::quantize_q8_row(src, dst, with_sum)
            },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: NEON is on every aarch64 CPU (and these levels come from `simd::detect`);
            // `src` holds whole blocks and `dst` their encoding (`check` in `quantize_row`, or
            // `testing::quantize_row_at`, verified the sizes).
            Level::Neon | Level::NeonDot | Level::NeonI8mm => unsafe {
                crate::arm::legacy::quantize_q8_row(src, dst, with_sum)
            },
            _ => legacy::quantize_q8_row(src, dst, with_sum),
        }
        return Ok(());
    }
    legacy::quantize_weights(ty, src, dst);
    Ok(())
}

/// Dot product of a row of Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0 weights with its Q8_0 / Q8_1
/// activations; every level gives the same bits.
#[inline]
pub(crate) fn legacy_dot(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / 32;
    let act = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        GgmlType::Q8_1
    } else {
        GgmlType::Q8_0
    };
    // Cutting both slices to exactly `nb` blocks is what makes the unchecked SIMD loads sound.
    let w = &w[..nb * ty.type_size()];
    let x = &x[..nb * act.type_size()];
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` comes only from `simd::detect`, which checked AVX2, FMA and
        // F16C; `w` and `x` hold exactly `nb` blocks of their types (cut above).
        Level::Avx2 => unsafe { crate::x86::legacy::madd::vec_dot(ty, nb, w, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; `Level::Avx512Vnni` means `simd::detect` also found AVX-512 VNNI,
        // VL and BW. Same bits as the AVX2 arm (see `x86::legacy::IntDot`).
        Level::Avx512Vnni => unsafe { crate::x86::legacy::vnni::vec_dot(ty, nb, w, x) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is on every aarch64 CPU; `w` and `x` hold exactly `nb` blocks of their
        // types (cut above).
        Level::Neon => unsafe { crate::arm::legacy::vec_dot_neon(ty, nb, w, x) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above; these levels mean `simd::detect` found the dot-product extension
        // (the i8mm level has no single-token i8mm kernel: `smmla` pairs rows and tokens).
        Level::NeonDot | Level::NeonI8mm => unsafe {
            crate::arm::legacy::vec_dot_sdot(ty, nb, w, x)
        },
        _ => legacy::dot_scalar(ty, nb, w, x),
    }
}

// ---------------------------------------------------------------------------------------------
// K-quants (Q2_K … Q6_K against Q8_K)
// ---------------------------------------------------------------------------------------------

/// Dot product of a K-quant weight row with a Q8_K activation row. All levels give the same
/// bits (see `formats::kquants`).
pub(crate) fn kquant_dot(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / QK_K;
    // The SIMD kernels read through raw pointers, so the sizes are checked in release builds
    // too: one comparison per row is noise next to a row's work.
    assert!(
        w.len() >= nb * ty.type_size() && x.len() >= nb * kquants::Q8K,
        "{ty} vec_dot of {n} elements on {} weight bytes and {} activation bytes",
        w.len(),
        x.len()
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` comes only from `simd::detect`, which checked AVX2, FMA and
        // F16C; the assertion above guarantees `nb` whole blocks in both buffers.
        Level::Avx2 => unsafe { crate::x86::kquants::vec_dot(ty, nb, w, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, and `simd::detect` also checked AVX-512 VNNI, VL and BW for
        // `Level::Avx512Vnni`. Same bits as the AVX2 kernel (see `x86::kquants::vec_dot_vnni`).
        Level::Avx512Vnni => unsafe { crate::x86::kquants::vec_dot_vnni(ty, nb, w, x) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is part of every aarch64 CPU (`Level::Neon` comes only from
        // `simd::detect`); the assertion above guarantees `nb` whole blocks in both buffers.
        Level::Neon => unsafe { crate::arm::kquants::vec_dot(ty, nb, w, x) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above, and `simd::detect` found the dot-product extension for both levels
        // (the i8mm level runs the dot-product kernel: see `arm::kquants_tile`). Same bits as
        // the NEON kernel.
        Level::NeonDot | Level::NeonI8mm => unsafe {
            crate::arm::kquants::vec_dot_sdot(ty, nb, w, x)
        },
        _ => kquants::vec_dot_scalar(ty, n, w, x),
    }
}

// ---------------------------------------------------------------------------------------------
// The non-linear 4-bit formats (IQ4_NL, MXFP4 against Q8_0; IQ4_XS against Q8_K)
// ---------------------------------------------------------------------------------------------

/// Dot product of an IQ4_NL, IQ4_XS or MXFP4 weight row with its activation row; every level
/// gives the same bits (see `formats::iquants`).
pub(crate) fn iquant_dot(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / ty.block_size();
    let act = if ty == GgmlType::IQ4_XS {
        GgmlType::Q8_K
    } else {
        GgmlType::Q8_0
    };
    // Cutting both slices to exactly `nb` blocks is what makes the unchecked SIMD loads sound
    // (indexing panics first if either is short).
    let w = &w[..nb * ty.type_size()];
    let x = &x[..nb * act.type_size()];
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` comes only from `simd::detect`, which checked AVX2, FMA and
        // F16C; `w` and `x` hold exactly `nb` blocks of their types (cut above).
        Level::Avx2 => unsafe { crate::x86::iquants::madd::vec_dot(ty, nb, w, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; `Level::Avx512Vnni` means `simd::detect` also found AVX-512 VNNI,
        // VL and BW. Same bits as the AVX2 arm (see `x86::iquants`).
        Level::Avx512Vnni => unsafe { crate::x86::iquants::vnni::vec_dot(ty, nb, w, x) },
        _ if ty == GgmlType::IQ4_XS => iquants::dot_scalar_iq4xs(nb, w, x),
        _ => iquants::dot_scalar_32(ty, nb, w, x),
    }
}

/// Dot product of an IQ2_XXS, IQ2_XS, IQ3_XXS or IQ3_S weight row with its Q8_K activation
/// row; every level gives the same bits (see `formats::iq23`).
pub(crate) fn iq23_dot(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / QK_K;
    // The kernels index their slices (no unchecked loads but the activations' 32-byte ones,
    // inside blocks `chunks_exact` produced), so short buffers panic instead of reading past.
    let w = &w[..nb * ty.type_size()];
    let x = &x[..nb * kquants::Q8K];
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` and `Level::Avx512Vnni` come only from `simd::detect`, which
        // checked AVX2, FMA and F16C; `w` and `x` hold exactly `nb` blocks (cut above).
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::iq23::vec_dot(ty, nb, w, x) },
        _ => iq23::dot_scalar(ty, nb, w, x),
    }
}

// ---------------------------------------------------------------------------------------------
// Float formats (F32, F16, BF16) and the attention helpers
// ---------------------------------------------------------------------------------------------

/// Decodes a row of F32, F16 or BF16 (`src` holds exactly `dst.len()` values).
pub(crate) fn float_dequantize(level: Level, ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if ty == GgmlType::F16 && level.has_avx2() {
        // SAFETY: `Level::Avx2` (or the VNNI level above it) means `simd::detect` found AVX2,
        // FMA and F16C on this CPU; lib.rs checked that `src` holds exactly `dst.len()` f16
        // values.
        unsafe { crate::x86::float::dequant_f16(src, dst) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if ty == GgmlType::F16 && level.has_neon() {
        // SAFETY: the NEON levels come only from `simd::detect` on aarch64, where NEON and its
        // f16 conversions are baseline; lib.rs checked that `src` holds exactly `dst.len()` f16
        // values.
        unsafe { crate::arm::float::dequant_f16(src, dst) };
        return;
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = level;
    float::dequantize(ty, src, dst)
}

/// Dot product of two rows of one float type, `n` values each; every level gives the same
/// bits.
#[inline]
pub(crate) fn float_dot(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let esize = ty.type_size();
    let (w, x) = (&w[..n * esize], &x[..n * esize]);
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` and `Level::Avx512Vnni` are only produced by `simd::detect`,
        // which checked that this CPU has AVX2, FMA and F16C (and passed by callers only when
        // `simd::supported`); the slices were cut to exactly `n` elements above. The float
        // formats have no integer dot, so the VNNI level runs the AVX2 kernels.
        Level::Avx2 | Level::Avx512Vnni => unsafe {
            match ty {
                GgmlType::F32 => crate::x86::float::dot_f32(n, w, x),
                GgmlType::F16 => crate::x86::float::dot_f16(n, w, x),
                GgmlType::BF16 => crate::x86::float::dot_bf16(n, w, x),
                other => unreachable!("float::vec_dot called with {other}"),
            }
        },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the NEON levels are only produced by `simd::detect` on aarch64 (NEON is
        // baseline there); the slices were cut to exactly `n` elements above. No integer dot
        // here, so the dotprod and i8mm levels run the NEON kernels.
        Level::Neon | Level::NeonDot | Level::NeonI8mm => unsafe {
            match ty {
                GgmlType::F32 => crate::arm::float::dot_f32(n, w, x),
                GgmlType::F16 => crate::arm::float::dot_f16(n, w, x),
                GgmlType::BF16 => crate::arm::float::dot_bf16(n, w, x),
                other => unreachable!("float::vec_dot called with {other}"),
            }
        },
        _ => float::vec_dot_scalar(ty, w, x),
    }
}

/// `out[r] = dot(k, q[r·n .. (r+1)·n])` for every row `r` of `q`: one key against several
/// queries (attention scores), each equal bit for bit to [`crate::vec_dot`] of the F32 rows,
/// and so to the F16 dot of the f16 values the rows were widened from. The key is loaded once
/// for all the queries instead of once per call.
///
/// # Panics
/// If `k` is shorter than `n` or `q` does not hold `out.len()` rows of `n`.
pub fn dot_f32_rows(n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
    dot_f32_rows_at(crate::simd::level(), n, k, q, out)
}

/// [`dot_f32_rows`] on an explicit level.
pub(crate) fn dot_f32_rows_at(level: Level, n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
    assert!(k.len() >= n, "dot_f32_rows: key of {} for n = {n}", k.len());
    assert_eq!(
        q.len(),
        out.len() * n,
        "dot_f32_rows: queries for {} rows of {n}",
        out.len()
    );
    let k = &k[..n];
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these levels are only produced by `simd::detect`, which found AVX2, FMA and
        // F16C; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::float::dot_f32_rows(n, k, q, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the NEON levels come only from `simd::detect` on aarch64, where NEON is
        // baseline; the lengths were checked above.
        Level::Neon | Level::NeonDot | Level::NeonI8mm => unsafe {
            crate::arm::float::dot_f32_rows(n, k, q, out)
        },
        _ => float::dot_f32_rows(n, k, q, out),
    }
}

/// `y += p[k · stride] · x_k` for each row `x_k` of `xs` (rows of `y.len()`), in row order:
/// one attention output accumulating a run of value rows, with the probabilities of its token
/// `stride` apart (key-major scores). Each element gets exactly [`axpy_rows`]'s operations
/// (`y + p·x`, the product rounded first) in the same key order, so the bits are those of one
/// `axpy_rows` call per key; but `y` stays in registers across the keys instead of being
/// loaded and stored once per key.
///
/// # Panics
/// If `xs` is not whole rows of `y.len()` or `p` has fewer than `(rows − 1) · stride + 1`
/// values.
pub fn axpy_keys(xs: &[f32], p: &[f32], stride: usize, y: &mut [f32]) {
    axpy_keys_at(crate::simd::level(), xs, p, stride, y)
}

/// [`axpy_keys`] on an explicit level.
pub(crate) fn axpy_keys_at(level: Level, xs: &[f32], p: &[f32], stride: usize, y: &mut [f32]) {
    let n = y.len();
    if n == 0 {
        return;
    }
    assert!(xs.len().is_multiple_of(n), "axpy_keys: rows of {n}");
    let rows = xs.len() / n;
    if rows == 0 {
        return;
    }
    assert!(
        p.len() > (rows - 1) * stride,
        "axpy_keys: {} probabilities for {rows} rows {stride} apart",
        p.len()
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_f32_rows_at`; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe {
            crate::x86::float::axpy_keys(xs, p, stride, y)
        },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as in `dot_f32_rows_at`; the lengths were checked above.
        Level::Neon | Level::NeonDot | Level::NeonI8mm => unsafe {
            crate::arm::float::axpy_keys(xs, p, stride, y)
        },
        _ => float::axpy_keys(xs, p, stride, y),
    }
}

/// `y[r] += p[r] · x` for every row `r` of `y` (rows of `x.len()`): one value row added into
/// several attention outputs. Each element is `y + p·x` with the product rounded first (a
/// multiplication, then an addition, never a fused multiply-add), on every level.
///
/// # Panics
/// If `y` does not hold `p.len()` rows of `x.len()`.
pub fn axpy_rows(x: &[f32], p: &[f32], y: &mut [f32]) {
    axpy_rows_at(crate::simd::level(), x, p, y)
}

/// [`axpy_rows`] on an explicit level.
pub(crate) fn axpy_rows_at(level: Level, x: &[f32], p: &[f32], y: &mut [f32]) {
    let n = x.len();
    assert_eq!(
        y.len(),
        p.len() * n,
        "axpy_rows: outputs for {} rows of {n}",
        p.len()
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_f32_rows_at`; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::float::axpy_rows(x, p, y) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as in `dot_f32_rows_at`; the lengths were checked above.
        Level::Neon | Level::NeonDot | Level::NeonI8mm => unsafe {
            crate::arm::float::axpy_rows(x, p, y)
        },
        _ => float::axpy_rows(x, p, y),
    }
}

/// Rounds every value to the nearest f16 (ties to even) and widens it back: exactly
/// `half::f16::from_f32(x).to_f32()` for each, eight at a time with F16C, four with NEON
/// (attention rounds its probabilities so, as llama.cpp multiplies V by f16 probabilities).
pub fn round_to_f16(x: &mut [f32]) {
    round_to_f16_at(crate::simd::level(), x)
}

/// [`round_to_f16`] on an explicit level.
pub(crate) fn round_to_f16_at(level: Level, x: &mut [f32]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these levels are only produced by `simd::detect`, which found F16C.
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::float::round_to_f16(x) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon | Level::NeonDot | Level::NeonI8mm => crate::arm::float::round_to_f16(x),
        _ => float::round_to_f16(x),
    }
}

// ---------------------------------------------------------------------------------------------
// The exponential (softmax, SwiGLU)
// ---------------------------------------------------------------------------------------------

/// `x[i] = exp_f32(x[i] − m[i])` and `sum[i] += x[i]`, element by element: one key's scores
/// for several tokens, each with its own maximum and running sum.
///
/// # Panics
/// If the three slices differ in length.
pub fn exp_sub_rows(x: &mut [f32], m: &[f32], sum: &mut [f32]) {
    exp_sub_rows_at(crate::simd::level(), x, m, sum)
}

/// [`exp_sub_rows`] on an explicit level.
pub(crate) fn exp_sub_rows_at(level: Level, x: &mut [f32], m: &[f32], sum: &mut [f32]) {
    assert!(
        x.len() == m.len() && x.len() == sum.len(),
        "exp_sub_rows: lengths {}, {}, {}",
        x.len(),
        m.len(),
        sum.len()
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these levels come from `simd::detect`, which found AVX2, FMA and F16C; the
        // lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::exp::exp_sub_rows(x, m, sum) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the NEON levels come from `simd::detect` on aarch64, where NEON is baseline;
        // the lengths were checked above.
        Level::Neon | Level::NeonDot | Level::NeonI8mm => unsafe {
            crate::arm::exp::exp_sub_rows(x, m, sum)
        },
        _ => exp::exp_sub_rows(x, m, sum),
    }
}

/// `x[i] = exp_f32(x[i] − m)` for every element (one token's scores against one maximum).
pub fn exp_sub(x: &mut [f32], m: f32) {
    exp_sub_at(crate::simd::level(), x, m)
}

/// [`exp_sub`] on an explicit level.
pub(crate) fn exp_sub_at(level: Level, x: &mut [f32], m: f32) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `exp_sub_rows_at`.
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::exp::exp_sub(x, m) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon | Level::NeonDot | Level::NeonI8mm => crate::arm::exp::exp_sub(x, m),
        _ => exp::exp_sub(x, m),
    }
}

/// `gate[i] = silu(gate[i]) · up[i]`, with `silu(x) = x / (1 + exp_f32(−x))`: the SwiGLU
/// feed-forward's activation, several lanes at a time, every lane equal to this scalar form.
///
/// # Panics
/// If the slices differ in length.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    swiglu_at(crate::simd::level(), gate, up)
}

/// [`swiglu`] on an explicit level.
pub(crate) fn swiglu_at(level: Level, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu: gate and up lengths");
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `exp_sub_rows_at`; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::exp::swiglu(gate, up) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as in `exp_sub_rows_at`; the lengths were checked above.
        Level::Neon | Level::NeonDot | Level::NeonI8mm => unsafe {
            crate::arm::exp::swiglu(gate, up)
        },
        _ => exp::swiglu(gate, up),
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-token tiles (row-major weights)
// ---------------------------------------------------------------------------------------------

/// A multi-token kernel: `(ty, blocks per row, operands, rows, tokens)`. Its safety contract
/// is `x86::legacy_tile::dot_tile`'s (and the same for the `arm::` tiles): the CPU runs the
/// level the kernel was chosen for, and the operands hold `rows` and `tokens` whole rows.
pub(crate) type TileFn = unsafe fn(GgmlType, usize, &Tile, usize, usize);

/// The multi-token kernel for weights of type `ty` at `level`, if there is one. Each of its
/// outputs equals the single-token [`crate::vec_dot`] at that level bit for bit.
pub(crate) fn tile_kernel(level: Level, ty: GgmlType) -> Option<TileFn> {
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if crate::x86::legacy_tile::supports(ty) => {
            Some(crate::x86::legacy_tile::dot_tile)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if crate::x86::legacy_tile::supports(ty) => {
            Some(crate::x86::legacy_tile::dot_tile_vnni)
        }
        #[cfg(target_arch = "aarch64")]
        Level::Neon if crate::arm::legacy_tile::supports(ty) => {
            Some(crate::arm::legacy_tile::dot_tile_neon)
        }
        #[cfg(target_arch = "aarch64")]
        Level::NeonDot if crate::arm::legacy_tile::supports(ty) => {
            Some(crate::arm::legacy_tile::dot_tile_sdot)
        }
        #[cfg(target_arch = "aarch64")]
        Level::NeonI8mm if crate::arm::legacy_tile::supports(ty) => {
            Some(crate::arm::legacy_tile::dot_tile_i8mm)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if crate::x86::kquants_tile::supports(ty) => {
            Some(crate::x86::kquants_tile::dot_tile)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if crate::x86::kquants_tile::supports(ty) => {
            Some(crate::x86::kquants_tile::dot_tile_vnni)
        }
        #[cfg(target_arch = "aarch64")]
        Level::Neon if crate::arm::kquants_tile::supports(ty) => {
            Some(crate::arm::kquants_tile::dot_tile)
        }
        #[cfg(target_arch = "aarch64")]
        Level::NeonDot | Level::NeonI8mm if crate::arm::kquants_tile::supports(ty) => {
            Some(crate::arm::kquants_tile::dot_tile_sdot)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512Vnni if crate::x86::iq_tile::supports(ty) => {
            Some(crate::x86::iq_tile::dot_tile)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Packed weights (groups of eight interleaved rows)
// ---------------------------------------------------------------------------------------------

/// A packed kernel: `(ty, blocks per row, operands, groups, tokens)`, where `Tile::w` points
/// at the first group and `Tile::wrb` is the bytes of one group. Its safety contract is
/// `x86::packed_legacy::tile_avx2`'s (and the same for the `arm::` packed kernels).
pub(crate) type PackedFn = unsafe fn(GgmlType, usize, &Tile, usize, usize);

/// The packed kernel for `ty` at `level` (`None` for the portable level, which runs the
/// scalar reference).
pub(crate) fn packed_kernel(level: Level, ty: GgmlType) -> Option<PackedFn> {
    let legacy = crate::formats::packed::legacy::supports(ty);
    let kquant = crate::formats::packed::kquants::supports(ty);
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if legacy => Some(crate::x86::packed_legacy::tile_avx2),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if legacy => Some(crate::x86::packed_legacy::tile_vnni),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if kquant => Some(crate::x86::packed_kquants::tile_avx2),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if kquant => Some(crate::x86::packed_kquants::tile_vnni),
        // SAFETY (for the caller's call): `Level::Neon` comes only from `simd::detect`, which
        // found NEON; `NeonDot` also the dot-product extension, `NeonI8mm` also i8mm, what
        // each kernel's safety contract asks of the CPU.
        #[cfg(target_arch = "aarch64")]
        Level::Neon if legacy => Some(crate::arm::packed_legacy::tile_neon),
        #[cfg(target_arch = "aarch64")]
        Level::NeonDot if legacy => Some(crate::arm::packed_legacy::tile_dot),
        #[cfg(target_arch = "aarch64")]
        Level::NeonI8mm if legacy => Some(crate::arm::packed_legacy::tile_i8mm),
        #[cfg(target_arch = "aarch64")]
        Level::Neon if kquant => Some(crate::arm::packed_kquants::tile_neon),
        #[cfg(target_arch = "aarch64")]
        Level::NeonDot if kquant => Some(crate::arm::packed_kquants::tile_dot),
        #[cfg(target_arch = "aarch64")]
        Level::NeonI8mm if kquant => Some(crate::arm::packed_kquants::tile_i8mm),
        _ => None,
    }
}

/// The K-quant kernels of every level against the scalar reference.
#[cfg(test)]
mod kquants_tests {
    use super::*;
    use half::f16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const K_TYPES: [GgmlType; 5] = [
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// Random valid blocks (finite f16 scales) against a Q8_K row of random activations.
    fn random_pair(ty: GgmlType, nb: usize, rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
        let mut w = vec![0u8; nb * ty.type_size()];
        rng.fill(&mut w[..]);
        let offsets: &[usize] = match ty {
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            GgmlType::Q6_K => &[208],
            _ => &[0, 2],
        };
        for block in w.chunks_exact_mut(ty.type_size()) {
            for &off in offsets {
                let d = f16::from_f32(rng.gen_range(-0.05f32..0.05));
                block[off..off + 2].copy_from_slice(&d.to_le_bytes());
            }
        }
        let x: Vec<f32> = (0..nb * QK_K)
            .map(|_| rng.gen_range(-3.0f32..3.0))
            .collect();
        let mut xq = vec![0u8; nb * kquants::Q8K];
        kquants::quantize(GgmlType::Q8_K, &x, &mut xq).unwrap();
        (w, xq)
    }

    /// The SIMD levels this CPU runs; prints a note when there are none.
    fn levels() -> Vec<Level> {
        let levels = crate::simd::simd_levels();
        if levels.is_empty() {
            eprintln!("no SIMD level on this CPU: nothing to compare with the scalar reference");
        }
        levels
    }

    #[test]
    fn every_level_and_scalar_give_identical_bits() {
        let levels = levels();
        let mut rng = StdRng::seed_from_u64(42);
        for ty in K_TYPES {
            for nb in [1, 2, 5, 16] {
                for _ in 0..20 {
                    let (w, xq) = random_pair(ty, nb, &mut rng);
                    let n = nb * QK_K;
                    let scalar = kquant_dot(Level::Scalar, ty, n, &w, &xq);
                    for &level in &levels {
                        let fast = kquant_dot(level, ty, n, &w, &xq);
                        assert_eq!(
                            scalar.to_bits(),
                            fast.to_bits(),
                            "{ty} n={n} {level:?}: {scalar} vs {fast}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_level_tile_equals_scalar_for_every_token_count() {
        // Tokens 1..=17 cover every tail of the tiles' token groups; each output must be the
        // scalar `vec_dot` of its pair.
        let levels = levels();
        let mut rng = StdRng::seed_from_u64(43);
        for ty in K_TYPES {
            for &level in &levels {
                let Some(kernel) = tile_kernel(level, ty) else {
                    continue;
                };
                let nb = 3;
                let (n, wrb, xrb) = (nb * QK_K, nb * ty.type_size(), nb * kquants::Q8K);
                for (rows, tokens) in (1..=17).map(|t| (1 + t % 3, t)) {
                    let (mut w, mut x) = (Vec::new(), Vec::new());
                    for _ in 0..rows.max(tokens) {
                        let (wr, xr) = random_pair(ty, nb, &mut rng);
                        w.extend_from_slice(&wr);
                        x.extend_from_slice(&xr);
                    }
                    w.truncate(rows * wrb);
                    x.truncate(tokens * xrb);
                    let mut out = vec![f32::NAN; rows * tokens];
                    let t = Tile {
                        w: w.as_ptr(),
                        wrb,
                        x: x.as_ptr(),
                        xrb,
                        out: out.as_mut_ptr(),
                        ostride: rows,
                    };
                    // SAFETY: `level` is supported (from `simd_levels`) and the kernel is its
                    // own; the buffers hold `rows` and `tokens` whole rows and every output.
                    unsafe { kernel(ty, nb, &t, rows, tokens) };
                    for k in 0..tokens {
                        for r in 0..rows {
                            let (wr, xr) = (&w[r * wrb..(r + 1) * wrb], &x[k * xrb..(k + 1) * xrb]);
                            let want = kquant_dot(Level::Scalar, ty, n, wr, xr);
                            let got = out[k * rows + r];
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{ty} {level:?}: row {r} of {rows}, token {k} of {tokens}: \
                                 {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_quants_do_not_saturate() {
        // All weight bits set (largest quants and scales) against ±127 activations: the
        // i16 pair sums of `maddubs` must not saturate on any path.
        for ty in K_TYPES {
            let mut w = vec![0xffu8; 2 * ty.type_size()];
            let (mut rng, nb) = (StdRng::seed_from_u64(1), 2);
            let (w_rand, _) = random_pair(ty, nb, &mut rng);
            // Keep the f16 scales finite: copy them from a random valid row.
            let offsets: &[usize] = match ty {
                GgmlType::Q2_K => &[80, 82],
                GgmlType::Q3_K => &[108],
                GgmlType::Q6_K => &[208],
                _ => &[0, 2],
            };
            for b in 0..nb {
                for &off in offsets {
                    let o = b * ty.type_size() + off;
                    w[o..o + 2].copy_from_slice(&w_rand[o..o + 2]);
                }
            }
            for sign in [1.0f32, -1.0] {
                let x = vec![sign; nb * QK_K];
                let mut xq = vec![0u8; nb * kquants::Q8K];
                kquants::quantize(GgmlType::Q8_K, &x, &mut xq).unwrap();
                let n = nb * QK_K;
                let mut wf = vec![0f32; n];
                let mut xf = vec![0f32; n];
                kquants::dequantize(ty, &w, &mut wf);
                kquants::dequantize(GgmlType::Q8_K, &xq, &mut xf);
                let want: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
                let mag: f64 = wf
                    .iter()
                    .zip(&xf)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                for level in std::iter::once(Level::Scalar).chain(levels()) {
                    let got = kquant_dot(level, ty, n, &w, &xq) as f64;
                    assert!(
                        (got - want).abs() <= 2e-6 * mag,
                        "{ty} {level:?}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// The float kernels and the exponential on every level against their scalar definitions.
#[cfg(test)]
mod float_tests;

// ---------------------------------------------------------------------------------------------
// The read-bandwidth probe
// ---------------------------------------------------------------------------------------------

/// The xor of `buf`'s little-endian 64-bit words (a last partial word zero-padded): the read
/// loop of the bandwidth probe (`hearth bench --bandwidth`), 32-byte loads on x86-64 like the
/// decode kernels', so the probe streams memory as fast as plain SIMD reads can. The value is
/// the same on every level.
pub fn xor_words(buf: &[u8]) -> u64 {
    xor_words_at(crate::simd::level(), buf)
}

/// [`xor_words`] on an explicit level.
pub(crate) fn xor_words_at(level: Level, buf: &[u8]) -> u64 {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these levels are only produced by `simd::detect`, which found AVX2.
        Level::Avx2 | Level::Avx512Vnni => unsafe { crate::x86::read::xor_words(buf) },
        // Elsewhere the portable loop: on aarch64 the compiler vectorizes it with NEON, which
        // every aarch64 CPU has.
        _ => crate::formats::read::xor_words(buf),
    }
}
