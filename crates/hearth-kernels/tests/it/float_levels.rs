//! The float formats' dot products on every SIMD level against the scalar reference, bit for
//! bit: every length from 1 to 100 (each tail of the 8- and 32-element loops) and a few long
//! rows, over ordinary values and over extremes (overflowing products, subnormals, signed
//! zeros, infinities), so an ARM machine and an x86 one compute the same f32 from the same rows.

use crate::common::rng;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::{quantize_row, row_bytes, testing, GgmlType};
use rand::rngs::StdRng;
use rand::Rng;

const FLOATS: [GgmlType; 3] = [GgmlType::F32, GgmlType::F16, GgmlType::BF16];

/// Equal bits, or both NaN: NaN payloads differ between instruction sets (an x86 CPU's
/// default NaN is negative, an ARM one's positive), and no model computes with them.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// `2^e`, exactly, for every exponent down to the smallest subnormal.
fn pow2(e: i32) -> f32 {
    2f64.powi(e) as f32
}

/// One value of `kind`: 0 ordinary; 1 a wide range of magnitudes, from the type's smallest
/// subnormal up to where products approach f32's largest finite value; 2 mostly signed zeros,
/// smallest subnormals and large powers of two among ordinary values.
fn value(r: &mut StdRng, ty: GgmlType, kind: u32) -> f32 {
    let sign = if r.gen_bool(0.5) { -1.0f32 } else { 1.0 };
    let (top, bottom) = match ty {
        GgmlType::F16 => (15, -24),
        _ => (62, -149),
    };
    match kind {
        0 => r.gen_range(-4.0f32..4.0),
        1 => sign * pow2(r.gen_range(bottom..=top)) * r.gen_range(1.0f32..1.99),
        _ => match r.gen_range(0..10) {
            0 | 1 => 0.0,
            2 | 3 => -0.0,
            4 => sign * pow2(bottom),
            5 => sign * pow2(top),
            _ => sign * r.gen_range(0.0f32..3.0),
        },
    }
}

fn row(r: &mut StdRng, ty: GgmlType, n: usize, kind: u32) -> Vec<u8> {
    let v: Vec<f32> = (0..n).map(|_| value(r, ty, kind)).collect();
    let mut out = vec![0u8; row_bytes(ty, n)];
    quantize_row(ty, &v, &mut out).expect("encode a float row");
    out
}

/// Every SIMD level against the scalar reference on `w · x`.
fn check(ty: GgmlType, n: usize, w: &[u8], x: &[u8], what: &str) {
    let want = testing::vec_dot_at(Level::Scalar, ty, n, w, x).unwrap();
    for level in simd::simd_levels() {
        let got = testing::vec_dot_at(level, ty, n, w, x).unwrap();
        assert!(
            same(got, want),
            "{ty} n={n} {what} {level:?}: {got:e} ({:#010x}) vs scalar {want:e} ({:#010x})",
            got.to_bits(),
            want.to_bits()
        );
    }
}

#[test]
fn float_dots_equal_the_scalar_reference_on_every_level() {
    if simd::simd_levels().is_empty() {
        eprintln!("no SIMD level on this CPU: nothing to compare");
    }
    let mut r = rng(0xf1_0a7);
    let lengths = (1..=100).chain([127, 128, 129, 255, 1000, 4096, 4099]);
    for n in lengths {
        for ty in FLOATS {
            for kind in 0..3 {
                let (w, x) = (row(&mut r, ty, n, kind), row(&mut r, ty, n, kind));
                check(ty, n, &w, &x, &format!("kind {kind}"));
            }
        }
    }
}

#[test]
fn float_dots_keep_signed_zeros_and_infinities_on_every_level() {
    for ty in FLOATS {
        let esize = ty.type_size();
        let enc = |v: &[f32]| {
            let mut out = vec![0u8; v.len() * esize];
            quantize_row(ty, v, &mut out).unwrap();
            out
        };
        for n in [1, 7, 8, 9, 31, 32, 33, 40, 64, 65] {
            // All negative zero products: the sign of a zero sum depends on where the
            // accumulation starts and which additions happen.
            let neg = enc(&vec![-0.0; n]);
            let pos = enc(&vec![1.0; n]);
            check(ty, n, &neg, &pos, "-0 · 1");
            check(ty, n, &neg, &neg, "-0 · -0");
            // One infinity (each position), the rest finite: ±inf, or NaN where signs meet.
            for at in [0, n / 2, n - 1] {
                let mut v = vec![0.5f32; n];
                v[at] = f32::INFINITY;
                let mut u = vec![-0.25f32; n];
                u[n - 1 - at] = f32::NEG_INFINITY;
                check(ty, n, &enc(&v), &pos, &format!("inf at {at}"));
                check(ty, n, &enc(&v), &enc(&u), &format!("inf at {at} and -inf"));
            }
            // Large products (for F32 and BF16, ones that overflow f32 only when summed).
            let big = enc(&vec![if ty == GgmlType::F16 { 60000.0 } else { 1e19 }; n]);
            check(ty, n, &big, &big, "large sums");
        }
    }
}
