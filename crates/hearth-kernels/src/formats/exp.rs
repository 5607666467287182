//! The exponential used by attention's softmax and the SwiGLU activation, eight lanes at a
//! time with AVX2, four with NEON.
//!
//! The C library's `expf` is one call per score (about 8% of a prompt's time on a small model).
//! This one is defined by [`exp_f32`]: a fixed sequence of f32 operations (range reduction by
//! `ln 2` in two parts, a degree-7 Taylor polynomial in Horner form with fused multiply-adds,
//! then scaling by `2^n` through the exponent bits) that the AVX2 and NEON code perform lane
//! by lane, so every lane equals [`exp_f32`] bit for bit, whatever the slice length or the
//! lane an element lands in. That keeps attention batch-invariant: a score's probability does
//! not depend on how many tokens are computed beside it. Accuracy: within 2 ulp of the true
//! value on `[-87, 88]` (tested against f64); inputs below −87 give `exp(−87)` (≈ 1.6e−38,
//! nothing next to a softmax's largest term, which is 1), above 88 give `exp(88)`.

pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that occur.
pub(crate) const LN2_HI: f32 = 0.693_145_75;
pub(crate) const LN2_LO: f32 = 1.428_606_8e-6;
pub(crate) const LO: f32 = -87.0;
pub(crate) const HI: f32 = 88.0;
/// `1 / k!` for k = 7 down to 2.
pub(crate) const C: [f32; 6] = [
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

// The portable loops of the public functions in `dispatch`: every level's lanes equal these.

/// `x[i] = exp_f32(x[i] − m[i])` and `sum[i] += x[i]`.
pub(crate) fn exp_sub_rows(x: &mut [f32], m: &[f32], sum: &mut [f32]) {
    for ((v, &mi), s) in x.iter_mut().zip(m).zip(sum) {
        *v = exp_f32(*v - mi);
        *s += *v;
    }
}

/// `x[i] = exp_f32(x[i] − m)`.
pub(crate) fn exp_sub(x: &mut [f32], m: f32) {
    x.iter_mut().for_each(|v| *v = exp_f32(*v - m))
}

/// `gate[i] = gate[i] / (1 + exp_f32(−gate[i])) · up[i]`.
pub(crate) fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp_f32(-*g)) * u;
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
}
