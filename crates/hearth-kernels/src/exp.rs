//! The exponential used by attention's softmax and the SwiGLU activation, eight lanes at a
//! time.
//!
//! The C library's `expf` is one call per score (about 8% of a prompt's time on a small model).
//! This one is defined by [`exp_f32`]: a fixed sequence of f32 operations (range reduction by
//! `ln 2` in two parts, a degree-7 Taylor polynomial in Horner form with fused multiply-adds,
//! then scaling by `2^n` through the exponent bits) that the AVX2 code performs lane by lane,
//! so every lane equals [`exp_f32`] bit for bit, whatever the slice length or the lane an
//! element lands in. That keeps attention batch-invariant: a score's probability does not
//! depend on how many tokens are computed beside it. Accuracy: within 2 ulp of the true
//! value on `[-87, 88]` (tested against f64); inputs below −87 give `exp(−87)` (≈ 1.6e−38,
//! nothing next to a softmax's largest term, which is 1), above 88 give `exp(88)`.

use crate::simd::Level;

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
const LO: f32 = -87.0;
const HI: f32 = 88.0;
/// `1 / k!` for k = 7 down to 2.
const C: [f32; 6] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// `e^x`, the definition every level computes.
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(LO, HI);
    let n = (x * LOG2E).round_ties_even();
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = C[0];
    for c in &C[1..] {
        p = p.mul_add(r, *c);
    }
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `x[i] = exp_f32(x[i] − m[i])` and `sum[i] += x[i]`, element by element: one key's scores
/// for several tokens, each with its own maximum and running sum.
///
/// # Panics
/// If the three slices differ in length.
pub fn exp_sub_rows(x: &mut [f32], m: &[f32], sum: &mut [f32]) {
    assert!(
        x.len() == m.len() && x.len() == sum.len(),
        "exp_sub_rows: lengths {}, {}, {}",
        x.len(),
        m.len(),
        sum.len()
    );
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these levels come from `simd::detect`, which found AVX2, FMA and F16C; the
        // lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::exp_sub_rows(x, m, sum) },
        _ => {
            for ((v, &mi), s) in x.iter_mut().zip(m).zip(sum) {
                *v = exp_f32(*v - mi);
                *s += *v;
            }
        }
    }
}

/// `x[i] = exp_f32(x[i] − m)` for every element (one token's scores against one maximum).
pub fn exp_sub(x: &mut [f32], m: f32) {
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `exp_sub_rows`.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::exp_sub(x, m) },
        _ => x.iter_mut().for_each(|v| *v = exp_f32(*v - m)),
    }
}

/// `gate[i] = silu(gate[i]) · up[i]`, with `silu(x) = x / (1 + exp_f32(−x))`: the SwiGLU
/// feed-forward's activation, eight lanes at a time, every lane equal to this scalar form.
///
/// # Panics
/// If the slices differ in length.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu: gate and up lengths");
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `exp_sub_rows`; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::swiglu(gate, up) },
        _ => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = *g / (1.0 + exp_f32(-*g)) * u;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{C, HI, LN2_HI, LN2_LO, LO, LOG2E};
    use std::arch::x86_64::*;

    /// [`super::exp_f32`] on eight lanes: the same operations in the same order.
    #[inline(always)]
    unsafe fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(LO)), _mm256_set1_ps(HI));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
        let mut p = _mm256_set1_ps(C[0]);
        for c in &C[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
        }
        let one = _mm256_set1_ps(1.0);
        p = _mm256_fmadd_ps(p, r, one);
        p = _mm256_fmadd_ps(p, r, one);
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(p, _mm256_castsi256_ps(e))
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; the slices have one length.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn exp_sub_rows(x: &mut [f32], m: &[f32], sum: &mut [f32]) {
        let n = x.len();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n for all three slices.
            unsafe {
                let v = _mm256_sub_ps(
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                    _mm256_loadu_ps(m.as_ptr().add(i)),
                );
                let e = exp8(v);
                _mm256_storeu_ps(x.as_mut_ptr().add(i), e);
                let s = _mm256_loadu_ps(sum.as_ptr().add(i));
                _mm256_storeu_ps(sum.as_mut_ptr().add(i), _mm256_add_ps(s, e));
            }
            i += 8;
        }
        if i < n {
            // The tail through one padded vector, so it takes the same lane operations.
            let (mut tx, mut tm, mut ts) = ([0f32; 8], [0f32; 8], [0f32; 8]);
            let k = n - i;
            tx[..k].copy_from_slice(&x[i..]);
            tm[..k].copy_from_slice(&m[i..]);
            ts[..k].copy_from_slice(&sum[i..]);
            // SAFETY: the three arrays hold eight f32 each.
            unsafe { exp_sub_rows(&mut tx, &tm, &mut ts) };
            x[i..].copy_from_slice(&tx[..k]);
            sum[i..].copy_from_slice(&ts[..k]);
        }
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn exp_sub(x: &mut [f32], m: f32) {
        let n = x.len();
        let mv = _mm256_set1_ps(m);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n.
            unsafe {
                let v = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv);
                _mm256_storeu_ps(x.as_mut_ptr().add(i), exp8(v));
            }
            i += 8;
        }
        if i < n {
            let mut t = [0f32; 8];
            let k = n - i;
            t[..k].copy_from_slice(&x[i..]);
            // SAFETY: `t` holds eight f32.
            unsafe { exp_sub(&mut t, m) };
            x[i..].copy_from_slice(&t[..k]);
        }
    }
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; the slices have one length.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
        let n = gate.len();
        let one = _mm256_set1_ps(1.0);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n for both slices.
            unsafe {
                let x = _mm256_loadu_ps(gate.as_ptr().add(i));
                let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
                let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
                let u = _mm256_loadu_ps(up.as_ptr().add(i));
                _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(s, u));
            }
            i += 8;
        }
        if i < n {
            let (mut tg, mut tu) = ([0f32; 8], [0f32; 8]);
            let k = n - i;
            tg[..k].copy_from_slice(&gate[i..]);
            tu[..k].copy_from_slice(&up[i..]);
            // SAFETY: both arrays hold eight f32.
            unsafe { swiglu(&mut tg, &tu) };
            gate[i..].copy_from_slice(&tg[..k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_true_value() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let got = exp_f32(x) as f64;
            let want = (x as f64).exp();
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.000_37;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn simd_lanes_equal_the_definition_bit_for_bit() {
        let mut seed = 0x853c49e6748fea9bu64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.9) * 120.0
        };
        for n in [0, 1, 5, 8, 13, 16, 17, 40] {
            let x: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let m: Vec<f32> = (0..n).map(|_| rnd() * 0.1).collect();
            let s0: Vec<f32> = (0..n).map(|_| rnd().abs()).collect();
            let (mut got, mut sums) = (x.clone(), s0.clone());
            exp_sub_rows(&mut got, &m, &mut sums);
            for i in 0..n {
                let want = exp_f32(x[i] - m[i]);
                assert_eq!(got[i].to_bits(), want.to_bits(), "n {n} element {i}");
                assert_eq!(sums[i].to_bits(), (s0[i] + want).to_bits());
            }
            let up: Vec<f32> = (0..n).map(|_| rnd() * 0.01).collect();
            let mut g = x.clone();
            swiglu(&mut g, &up);
            for i in 0..n {
                let want = x[i] / (1.0 + exp_f32(-x[i])) * up[i];
                assert_eq!(g[i].to_bits(), want.to_bits(), "swiglu n {n} element {i}");
            }
            let mut one = x.clone();
            exp_sub(&mut one, 1.5);
            for i in 0..n {
                assert_eq!(one[i].to_bits(), exp_f32(x[i] - 1.5).to_bits(), "n {n} {i}");
            }
        }
    }
}
