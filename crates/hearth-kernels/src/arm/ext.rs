//! The dot-product and matrix-multiply instructions, whose intrinsics (`vdotq_s32`,
//! `vmmlaq_s32`) are unstable on the stable toolchain: each is one `asm!` instruction on
//! registers, wrapped in a function the kernels inline. The `.arch_extension` directive lets
//! the assembler accept the instruction without enabling the feature for the whole crate; the
//! level check in `dispatch` is what makes running it sound.

use std::arch::aarch64::{int32x4_t, int8x16_t};
use std::arch::asm;

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
