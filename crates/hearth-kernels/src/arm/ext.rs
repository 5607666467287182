//! The instructions whose intrinsics are unstable on the stable toolchain, each one `asm!` on
//! registers wrapped in a function the kernels inline:
//! - the dot-product and matrix-multiply instructions (`vdotq_s32`, `vmmlaq_s32`). The
//!   `.arch_extension` directive lets the assembler accept them without enabling the feature
//!   for the whole crate; the level check in `dispatch` is what makes running them sound.
//! - the f16 conversions (`fcvtl`, `fcvtl2`, `fcvtn`, scalar `fcvt`), whose intrinsics need
//!   Rust's unstable f16 types. They are base Advanced SIMD and FP instructions, on every
//!   aarch64 CPU, so these wrappers are safe functions. Widening is exact, as the reference's
//!   software conversion is (a signalling NaN comes out quiet; no finite value differs).

use std::arch::aarch64::{float32x4_t, int32x4_t, int8x16_t, uint16x4_t, uint16x8_t};
use std::arch::asm;

/// The four f16 (bits) of `h` widened to f32 (`fcvtl`).
#[inline(always)]
pub(crate) fn widen_f16(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl` is base Advanced SIMD (every aarch64 CPU); it reads and writes only the
    // two vector registers named here.
    unsafe {
        asm!(
            "fcvtl {out:v}.4s, {h:v}.4h",
            out = lateout(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// The four f16 in the high half of `h` widened to f32 (`fcvtl2`).
#[inline(always)]
pub(crate) fn widen_f16_high(h: uint16x8_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: as in `widen_f16` (`fcvtl2` is its high-half form).
    unsafe {
        asm!(
            "fcvtl2 {out:v}.4s, {h:v}.8h",
            out = lateout(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Each lane rounded to the nearest f16 (ties to even, the FPCR's default mode, which no code
/// in this process changes) and widened back: `fcvtn` then `fcvtl`.
#[inline(always)]
pub(crate) fn round_f16(x: float32x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: base Advanced SIMD instructions on registers only, as in `widen_f16`; `t` is a
    // scratch register.
    unsafe {
        asm!(
            "fcvtn {t:v}.4h, {x:v}.4s",
            "fcvtl {out:v}.4s, {t:v}.4h",
            x = in(vreg) x,
            t = out(vreg) _,
            out = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// One f16 (bits) as f32, with the FP unit's scalar `fcvt` (only f16 *arithmetic* needs the
/// FP16 extension). The `half` crate would check for that extension at run time and call out
/// of line, spilling a kernel's vector registers once per block.
#[inline(always)]
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    let out: f32;
    // SAFETY: `fmov` and `fcvt` (single from half) are in every aarch64 CPU's FP unit; they
    // read and write only the registers named here.
    unsafe {
        asm!(
            "fmov {t:s}, {b:w}",
            "fcvt {o:s}, {t:h}",
            b = in(reg) u32::from(bits),
            t = out(vreg) _,
            o = out(vreg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// `acc[i] + Σ_{j<4} a[4i+j]·b[4i+j]` for each of the four i32 lanes, products of signed
/// bytes (`sdot`). The sums are exact: four products of at most 128² fit easily in an i32.
///
/// # Safety
/// The CPU must have the dot-product extension ([`crate::simd::Level::NeonDot`] or above).
#[inline(always)]
pub(crate) unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: the caller guarantees the dot-product extension; the instruction reads and
    // writes only the three vector registers named here.
    unsafe {
        asm!(
            ".arch_extension dotprod",
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// The 2×2 i32 block `acc + A·Bᵀ` where `a` holds two rows of eight signed bytes (row 0 in
/// bytes 0–7, row 1 in 8–15) and `b` two more (`smmla`): lanes 0, 1 are row 0 of `a` against
/// rows 0, 1 of `b`, lanes 2, 3 row 1 of `a` against them. Exact, as [`sdot`].
///
/// # Safety
/// The CPU must have the int8 matrix-multiply extension ([`crate::simd::Level::NeonI8mm`]).
#[inline(always)]
pub(crate) unsafe fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: the caller guarantees i8mm; registers only, as in `sdot`.
    unsafe {
        asm!(
            ".arch_extension i8mm",
            "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{supported, Level};
    use std::arch::aarch64::*;

    fn bytes(seed: u8) -> [i8; 16] {
        std::array::from_fn(|i| (seed as i32 * 37 + i as i32 * 101 - 128) as i8)
    }

    #[test]
    fn sdot_sums_four_products_per_lane() {
        if !supported(Level::NeonDot) {
            eprintln!("no dot-product extension: nothing to check");
            return;
        }
        for seed in 0..50u8 {
            let (a, b) = (bytes(seed), bytes(seed.wrapping_mul(7).wrapping_add(3)));
            let mut extremes = [-128i8; 16];
            extremes[seed as usize % 16] = 127;
            for (a, b) in [(a, b), (extremes, extremes), ([-128; 16], [-128; 16])] {
                let acc = [1i32, -2, 3, i32::MAX - 70000];
                let mut got = [0i32; 4];
                // SAFETY: checked above; the arrays hold 16 bytes and 4 i32.
                unsafe {
                    let (va, vb, vacc) = (
                        vld1q_s8(a.as_ptr()),
                        vld1q_s8(b.as_ptr()),
                        vld1q_s32(acc.as_ptr()),
                    );
                    vst1q_s32(got.as_mut_ptr(), sdot(vacc, va, vb));
                }
                for i in 0..4 {
                    let s: i32 = (0..4)
                        .map(|j| a[4 * i + j] as i32 * b[4 * i + j] as i32)
                        .sum();
                    assert_eq!(got[i], acc[i].wrapping_add(s));
                }
            }
        }
    }

    #[test]
    fn smmla_is_a_two_by_two_block_of_eight_term_dots() {
        if !supported(Level::NeonI8mm) {
            eprintln!("no i8mm extension: nothing to check");
            return;
        }
        for seed in 0..50u8 {
            let (a, b) = (bytes(seed), bytes(seed ^ 0x5a));
            let acc = [7i32, -9, 100, -100];
            let mut got = [0i32; 4];
            // SAFETY: checked above; the arrays hold 16 bytes and 4 i32.
            unsafe {
                let r = smmla(
                    vld1q_s32(acc.as_ptr()),
                    vld1q_s8(a.as_ptr()),
                    vld1q_s8(b.as_ptr()),
                );
                vst1q_s32(got.as_mut_ptr(), r);
            }
            for i in 0..2 {
                for j in 0..2 {
                    let s: i32 = (0..8)
                        .map(|k| a[8 * i + k] as i32 * b[8 * j + k] as i32)
                        .sum();
                    assert_eq!(got[2 * i + j], acc[2 * i + j] + s, "lane {i},{j}");
                }
            }
        }
    }
}
