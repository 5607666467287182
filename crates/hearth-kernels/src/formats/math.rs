//! The elementary functions of the forward pass outside the kernels (RoPE's angles and
//! frequencies, GELU's and soft-capping's `tanh`, the log-sum-exp of log-probabilities, BERT's
//! `erf`), computed by Hearth itself so that a model gives the same bits on every platform.
//!
//! Rust's `f32::sin_cos`, `powf`, `tanh`, `exp` and `ln` call the platform's C library, and
//! those do not round alike in every case: glibc 2.36's `tanhf` gives other bits on aarch64 than
//! on x86-64, Apple's libm is another library again, and glibc's `sinf`/`cosf` are off by one ulp
//! on about 2.6% of RoPE's angles, where another library may round correctly. One last bit in a
//! RoPE angle moves a query, which can move a whole 8-bit activation block and then the logits. These are fixed sequences of f64 additions, multiplications and divisions
//! (exact IEEE operations, which Rust never contracts into fused ones), integer arithmetic and
//! conversions, so every target computes the same bits. Working in f64 leaves the f32 results
//! correctly rounded but for rare near-ties, where they are still off by at most one ulp.
//! Measured against the C library in the tests below.

use std::f64::consts::{FRAC_PI_2, LOG2_E};

/// `ln 2` split so that `n · LN2_HI` is exact for every exponent `n` of an f64 (fdlibm's split).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// `e^x` in f64, within 2 ulp: `x = n ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-13 Taylor
/// polynomial of `e^r` (its truncation error is below 1e−17), scaled by `2^n`.
pub fn exp_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.133_219_101_941_2 {
        return 0.0;
    }
    let n = (x * LOG2_E).round_ties_even();
    let r = x - n * LN2_HI;
    let r = r - n * LN2_LO;
    // 1 + r + r²(1/2! + r(1/3! + … + r/13!)): the two leading terms kept out of the
    // polynomial so its rounding errors stay far below the result's last bit.
    let mut p = EXP_C[EXP_C.len() - 1];
    for c in EXP_C[..EXP_C.len() - 1].iter().rev() {
        p = p * r + c;
    }
    scale2(1.0 + (r + r * r * p), n as i32)
}

/// `1/k!` for k = 2..=13.
const EXP_C: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut f = 1.0;
    let mut k = 2;
    while k <= 13 {
        f *= k as f64;
        c[k - 2] = 1.0 / f;
        k += 1;
    }
    c
};

/// `v · 2^n` for the `n` that `exp_f64` produces (−1075..=1024).
fn scale2(v: f64, n: i32) -> f64 {
    let pow2 = |e: i32| f64::from_bits(((e + 1023) as u64) << 52);
    if n > 1023 {
        v * pow2(1023) * pow2(n - 1023)
    } else if n < -1022 {
        v * pow2(-1000) * pow2(n + 1000)
    } else {
        v * pow2(n)
    }
}

/// `e^x − 1` in f64, accurate near 0 where `exp_f64(x) − 1` would cancel.
pub fn expm1_f64(x: f64) -> f64 {
    // Below 1 the subtraction would lose up to two bits; above, at most one.
    if x.abs() < 1.0 {
        // x + x²(1/2! + x(1/3! + … + x/20!)): truncation below 1e−19 of the result.
        let mut p = EXPM1_C[EXPM1_C.len() - 1];
        for c in EXPM1_C[..EXPM1_C.len() - 1].iter().rev() {
            p = p * x + c;
        }
        x + x * x * p
    } else {
        exp_f64(x) - 1.0
    }
}

/// `1/k!` for k = 2..=20.
const EXPM1_C: [f64; 19] = {
    let mut c = [0.0; 19];
    let mut f = 1.0;
    let mut k = 2;
    while k <= 20 {
        f *= k as f64;
        c[k - 2] = 1.0 / f;
        k += 1;
    }
    c
};

/// The natural logarithm in f64: `x = 2^e · m` with `m` in `[√½, √2)`, then
/// `ln m = 2 atanh s` with `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, as an odd series.
pub fn ln_f64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    let (x, mut e) = if x < f64::MIN_POSITIVE {
        (x * f64::from_bits((1023 + 54) << 52), -54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // m − 1 is exact (m and 1 are within a factor of two of each other).
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    // 2s(1 + z/3 + z²/5 + … + z¹¹/23): z ≤ 0.0295, so the rest is below 1e−18.
    let mut p = 1.0 / 23.0;
    let mut k = 21.0;
    while k >= 3.0 {
        p = p * z + 1.0 / k;
        k -= 2.0;
    }
    let ln_m = 2.0 * s + 2.0 * s * z * p;
    let e = f64::from(e);
    e * LN2_HI + (ln_m + e * LN2_LO)
}

/// `x^y` for `x ≥ 0` (RoPE's frequency base), as `e^(y ln x)` in f64 rounded once to f32;
/// NaN for negative `x`.
pub fn pow_f32(x: f32, y: f32) -> f32 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    exp_f64(f64::from(y) * ln_f64(f64::from(x))) as f32
}

/// `tanh x` in f32, as `t/(t + 2)` with `t = e^(2|x|) − 1` in f64.
pub fn tanh_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = f64::from(x).abs();
    // 1 − tanh(9.5) ≈ 1.1e−8 is below half an ulp of 1, so f32 says 1 from here on (and e^(2a)
    // would overflow far above).
    let t = if a > 9.5 {
        1.0
    } else {
        let e = expm1_f64(2.0 * a);
        e / (e + 2.0)
    };
    (t as f32).copysign(x)
}

/// Bits of 2/π after the binary point, 32 to a word, behind one word of zeros so that a
/// window may start a little before the point (the leading zeros of small arguments).
const TWO_OVER_PI: [u32; 13] = [
    0, 0xA2F9836E, 0x4E441529, 0xFC2757D1, 0xF534DDC0, 0xDB629599, 0x3C439041, 0xFE5163AB,
    0xDEBBC561, 0xB7246E3A, 0x424DD2E0, 0x06492EEA, 0x09D1921C,
];

/// `(sin x, cos x)` in f32. Arguments beyond π/4 are reduced modulo π/2 exactly, whatever
/// their size (Payne and Hanek's method: the 24-bit significand times the 128 bits of 2/π that
/// matter at its exponent, in integers), so a RoPE angle `pos · θ` is as accurate at position
/// 100,000 as at 10; then Taylor polynomials in f64 on `|r| ≤ π/4`.
pub fn sin_cos_f32(x: f32) -> (f32, f32) {
    if !x.is_finite() {
        return (f32::NAN, f32::NAN);
    }
    let a = x.abs();
    let (quadrant, r) = if a <= std::f32::consts::FRAC_PI_4 {
        (0u32, f64::from(a))
    } else {
        reduce_pio2(a)
    };
    let (s, c) = sin_cos_kernel(r);
    let (s, c) = match quadrant & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    };
    // sin is odd; negating after rounding keeps both signs' roundings alike.
    let s = if x.is_sign_negative() {
        -(s as f32)
    } else {
        s as f32
    };
    (s, c as f32)
}

/// `|x| = (q + f) · π/2` with `q` an integer taken modulo 4 and `|f| ≤ ½`: returns `q mod 4`
/// and `f · π/2`. For `|x| ≥ π/4`, so that its exponent leaves at least 103 of the 128 bits of
/// 2/π below the point.
fn reduce_pio2(a: f32) -> (u32, f64) {
    let bits = a.to_bits();
    // a = m · 2^k with a 24-bit integer m (a is normal here).
    let m = u128::from((bits & 0x7f_ffff) | 0x80_0000);
    let k = ((bits >> 23) & 0xff) as i32 - 127 - 23;
    // a · 2/π = m · Σ b_i 2^(k−i): the bits b_i with i ≤ k − 2 only add multiples of 4, so the
    // window starts at i = k − 1 and m · window · 2^−126 is a · 2/π modulo 4.
    let start = (k - 1 - 1 + 32) as usize; // bit offset into TWO_OVER_PI, zero word included
    let (w, b) = (start / 32, start % 32);
    let word = |i: usize| u128::from(TWO_OVER_PI[w + i]);
    let hi = (word(0) << 96) | (word(1) << 64) | (word(2) << 32) | word(3);
    let window = if b == 0 {
        hi
    } else {
        (hi << b) | (word(4) >> (32 - b))
    };
    // Wrapping: only the product modulo 2^128 (a · 2/π modulo 4) matters.
    let p = m.wrapping_mul(window);
    let q = (p >> 126) as u32;
    // The fraction as a signed 2.126 fixed-point number in [−½, ½): a fraction of ½ or more
    // becomes f − 1 with the quadrant one up.
    let f = (p << 2) as i128;
    let q = q + u32::from(f < 0);
    let frac = f as f64 * f64::from_bits((1023 - 128) << 52);
    (q, frac * FRAC_PI_2)
}

/// `(sin r, cos r)` for `|r| ≤ π/4` by Taylor polynomials to `r^17` and `r^18` (truncation
/// below 1e−19).
fn sin_cos_kernel(r: f64) -> (f64, f64) {
    let z = r * r;
    let mut s = SIN_C[SIN_C.len() - 1];
    for c in SIN_C[..SIN_C.len() - 1].iter().rev() {
        s = s * z + c;
    }
    let mut c = COS_C[COS_C.len() - 1];
    for k in COS_C[..COS_C.len() - 1].iter().rev() {
        c = c * z + k;
    }
    (r + r * z * s, 1.0 + z * c)
}

/// `(−1)^k / (2k+1)!` for k = 1..=8.
const SIN_C: [f64; 8] = {
    let mut c = [0.0; 8];
    let mut f = 1.0;
    let mut k = 1;
    while k <= 8 {
        f *= ((2 * k) * (2 * k + 1)) as f64;
        c[k - 1] = if k % 2 == 1 { -1.0 / f } else { 1.0 / f };
        k += 1;
    }
    c
};

/// `(−1)^k / (2k)!` for k = 1..=9.
const COS_C: [f64; 9] = {
    let mut c = [0.0; 9];
    let mut f = 1.0;
    let mut k = 1;
    while k <= 9 {
        f *= ((2 * k - 1) * (2 * k)) as f64;
        c[k - 1] = if k % 2 == 1 { -1.0 / f } else { 1.0 / f };
        k += 1;
    }
    c
};

#[cfg(test)]
mod tests {
    //! Against the C library, in ulps (units in the last place), over inputs spread across
    //! every exponent each function meets. The f32 functions are compared with the f64 C
    //! function rounded to f32: within one ulp means correctly rounded but for near-ties.

    use super::*;

    /// A small deterministic generator (xorshift64*), so the inputs are the same everywhere.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in `[lo, hi)`.
        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn ulps32(a: f32, b: f32) -> u64 {
        let key = |x: f32| {
            let b = i64::from(x.to_bits());
            if b & 0x8000_0000 != 0 {
                -(b & 0x7fff_ffff)
            } else {
                b
            }
        };
        key(a).abs_diff(key(b))
    }

    fn ulps64(a: f64, b: f64) -> u64 {
        let key = |x: f64| {
            let b = i128::from(x.to_bits());
            if b & (1 << 63) != 0 {
                -(b & 0x7fff_ffff_ffff_ffff)
            } else {
                b
            }
        };
        key(a).abs_diff(key(b)) as u64
    }

    const N: usize = 100_000;

    /// Returns the worst ulp error and its input.
    fn worst<T: Copy>(inputs: impl Iterator<Item = T>, err: impl Fn(T) -> u64) -> (u64, Option<T>) {
        let mut w = (0, None);
        for x in inputs {
            let e = err(x);
            if e > w.0 {
                w = (e, Some(x));
            }
        }
        w
    }

    #[test]
    fn exp_f64_is_within_two_ulp_of_libm() {
        let mut g = Gen(1);
        let xs = (0..N)
            .map(|_| g.range(-708.0, 709.0))
            .chain((0..N).map(|i| {
                let t = i as f64 / N as f64;
                (t - 0.5) * 2.0
            }));
        let (w, at) = worst(xs, |x| ulps64(exp_f64(x), x.exp()));
        assert!(w <= 2, "exp_f64: {w} ulp at {at:?}");
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f64(710.0), f64::INFINITY);
        assert_eq!(exp_f64(-746.0), 0.0);
        assert!(exp_f64(-740.0) > 0.0, "subnormal results");
        assert!(exp_f64(f64::NAN).is_nan());
    }

    #[test]
    fn expm1_f64_is_within_two_ulp_of_libm() {
        let mut g = Gen(2);
        let xs = (0..N)
            .map(|_| g.range(-1.0, 1.0) * 10f64.powi((g.next() % 12) as i32 - 10))
            .chain({
                let mut g = Gen(101);
                (0..N).map(move |_| g.range(-40.0, 40.0))
            });
        let (w, at) = worst(xs, |x| ulps64(expm1_f64(x), x.exp_m1()));
        assert!(w <= 2, "expm1_f64: {w} ulp at {at:?}");
    }

    #[test]
    fn ln_f64_is_within_two_ulp_of_libm() {
        let mut g = Gen(3);
        // Every exponent, subnormals included, and the neighbourhood of 1 where ln is small.
        let xs = (0..N)
            .map(|_| f64::from_bits(g.next() % 0x7ff0_0000_0000_0000))
            .chain({
                let mut g = Gen(102);
                (0..N).map(move |_| g.range(0.5, 2.0))
            })
            .chain({
                let mut g = Gen(103);
                (0..N).map(move |_| 1.0 + g.range(-1e-6, 1e-6))
            });
        let (w, at) = worst(xs, |x| ulps64(ln_f64(x), x.ln()));
        assert!(w <= 2, "ln_f64: {w} ulp at {at:?}");
        assert_eq!(ln_f64(1.0), 0.0);
        assert_eq!(ln_f64(0.0), f64::NEG_INFINITY);
        assert!(ln_f64(-1.0).is_nan());
        assert_eq!(ln_f64(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn pow_f32_is_within_one_ulp_of_libm() {
        let mut g = Gen(4);
        let xs = (0..N).map(|_| {
            let base = g.range(0.0, 1e6) as f32;
            let e = g.range(-6.0, 6.0) as f32;
            (base, e)
        });
        // RoPE's frequency ratios: every base and rotated width the catalog's models use.
        let rope = [1e4f32, 5e5, 1e6, 1e5, 8e6]
            .into_iter()
            .flat_map(|b| (1..=512).map(move |d| (b, -2.0 / d as f32)));
        let (w, at) = worst(xs.chain(rope), |(b, e)| {
            let want = f64::from(b).powf(f64::from(e)) as f32;
            if want.is_finite() && want.is_normal() {
                ulps32(pow_f32(b, e), want)
            } else {
                0
            }
        });
        assert!(w <= 1, "pow_f32: {w} ulp at {at:?}");
        assert_eq!(pow_f32(0.0, 2.0), 0.0);
        assert_eq!(pow_f32(0.0, -2.0), f32::INFINITY);
        assert_eq!(pow_f32(2.0, 10.0), 1024.0);
        assert!(pow_f32(-2.0, 0.5).is_nan());
    }

    #[test]
    fn tanh_f32_is_within_one_ulp_of_libm() {
        let mut g = Gen(5);
        let xs = (0..N).map(|_| g.range(-12.0, 12.0) as f32).chain({
            let mut g = Gen(104);
            (0..N).map(move |_| f32::from_bits(g.next() as u32 & 0xbfff_ffff))
        });
        let (w, at) = worst(xs, |x| {
            let want = f64::from(x).tanh() as f32;
            ulps32(tanh_f32(x), want)
        });
        assert!(w <= 1, "tanh_f32: {w} ulp at {at:?}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert!(tanh_f32(-0.0).is_sign_negative());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn sin_cos_f32_is_within_one_ulp_of_libm() {
        let mut g = Gen(6);
        // Every finite f32 bit pattern's exponent (up to 3.4e38, where the reduction needs the
        // most bits of 2/π), and RoPE's angles: position times a frequency.
        let xs = (0..N)
            .map(|_| f32::from_bits(g.next() as u32 & 0xff7f_ffff))
            .chain({
                let mut g = Gen(105);
                (0..N).map(move |_| g.range(-10.0, 10.0) as f32)
            })
            .chain({
                let mut g = Gen(106);
                (0..N).map(move |_| {
                    let pos = (g.next() % 200_000) as f32;
                    pos * pow_f32(10_000.0, -((g.next() % 64) as f32) / 64.0)
                })
            });
        let (w, at) = worst(xs, |x| {
            let (s, c) = sin_cos_f32(x);
            let x64 = f64::from(x);
            ulps32(s, x64.sin() as f32).max(ulps32(c, x64.cos() as f32))
        });
        assert!(w <= 1, "sin_cos_f32: {w} ulp at {at:?}");
        assert_eq!(sin_cos_f32(0.0), (0.0, 1.0));
        assert!(sin_cos_f32(-0.0).0.is_sign_negative());
        assert!(sin_cos_f32(f32::INFINITY).0.is_nan());
    }
}
