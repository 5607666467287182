//! The float kernels and the exponential on every level this CPU runs, against their scalar
//! definitions, bit for bit (or both NaN: NaN payloads are not part of the contract).

use super::*;
use crate::simd::simd_levels;
use half::f16;

/// The portable level first, then every SIMD level of this CPU.
fn levels() -> Vec<Level> {
    std::iter::once(Level::Scalar)
        .chain(simd_levels())
        .collect()
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_same(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            same(g, w),
            "{what}: element {i}: {g:e} ({:#010x}) vs {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// xorshift values in `[-scale/2, scale/2)`.
fn rng(seed: u64, scale: f32) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
    }
}

#[test]
fn f16_rows_widen_to_the_scalar_bits_on_every_level() {
    // Every f16 bit pattern (NaNs, infinities, subnormals, both zeros), as one long row and
    // as short rows that end in every tail length.
    let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let mut want = vec![0f32; all.len() / 2];
    float::dequantize(GgmlType::F16, &all, &mut want);
    for level in levels() {
        let mut got = vec![0f32; want.len()];
        float_dequantize(level, GgmlType::F16, &all, &mut got);
        assert_same(&got, &want, &format!("{level:?} all f16"));
        for n in 1..=17 {
            let start = 0x7bf0 - 2 * n;
            let src = &all[2 * start..2 * (start + n)];
            let mut got = vec![0f32; n];
            float_dequantize(level, GgmlType::F16, src, &mut got);
            assert_same(&got, &want[start..start + n], &format!("{level:?} n {n}"));
        }
    }
}

#[test]
fn rows_kernels_equal_one_call_per_row_bit_for_bit() {
    let mut rnd = rng(0x9e3779b97f4a7c15, 8.0);
    for n in [1, 3, 4, 7, 8, 31, 32, 40, 64, 100, 256] {
        for rows in 0..8 {
            let k: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let q: Vec<f32> = (0..rows * n).map(|_| rnd()).collect();
            let p: Vec<f32> = (0..rows).map(|_| rnd()).collect();
            let y0: Vec<f32> = (0..rows * n).map(|_| rnd()).collect();
            let mut axpy_want = y0.clone();
            for r in 0..rows {
                for t in 0..n {
                    axpy_want[r * n + t] += p[r] * k[t];
                }
            }
            let kb: &[u8] = bytemuck::cast_slice(&k);
            let dots_want: Vec<f32> = (0..rows)
                .map(|r| {
                    let qb = bytemuck::cast_slice(&q[r * n..(r + 1) * n]);
                    float_dot(Level::Scalar, GgmlType::F32, n, kb, qb)
                })
                .collect();
            for level in levels() {
                let what = format!("{level:?} n {n} rows {rows}");
                let mut out = vec![0f32; rows];
                dot_f32_rows_at(level, n, &k, &q, &mut out);
                assert_same(&out, &dots_want, &format!("dot_f32_rows {what}"));
                for r in 0..rows {
                    let qb = bytemuck::cast_slice(&q[r * n..(r + 1) * n]);
                    let one = float_dot(level, GgmlType::F32, n, kb, qb);
                    assert!(same(one, out[r]), "{what}: row {r} against vec_dot");
                }
                let mut y = y0.clone();
                axpy_rows_at(level, &k, &p, &mut y);
                assert_same(&y, &axpy_want, &format!("axpy_rows {what}"));
            }
        }
    }
}

#[test]
fn axpy_keys_equals_one_axpy_rows_call_per_key_bit_for_bit() {
    let mut rnd = rng(0x2545f4914f6cdd1d, 8.0);
    for n in [1, 3, 4, 7, 8, 63, 64, 68, 72, 128, 200, 256] {
        for keys in [0, 1, 2, 5, 33] {
            for stride in [1, 3, 16] {
                let xs: Vec<f32> = (0..keys * n).map(|_| rnd()).collect();
                let p: Vec<f32> = (0..keys * stride).map(|_| rnd()).collect();
                let y0: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let mut want = y0.clone();
                for k in 0..keys {
                    let (x, pk) = (&xs[k * n..(k + 1) * n], &p[k * stride..k * stride + 1]);
                    axpy_rows_at(Level::Scalar, x, pk, &mut want);
                }
                for level in levels() {
                    let mut y = y0.clone();
                    axpy_keys_at(level, &xs, &p, stride, &mut y);
                    let what = format!("{level:?} n {n} keys {keys} stride {stride}");
                    assert_same(&y, &want, &what);
                }
            }
        }
    }
}

#[test]
fn round_to_f16_equals_half_for_every_f16_neighbourhood() {
    // Around every finite f16: the value itself, its midpoints with the neighbours (ties),
    // and values just off them, plus overflow, subnormals, zeros and infinities.
    let mut xs = vec![
        0.0f32,
        -0.0,
        65504.0,
        65520.0,
        70000.0,
        -70000.0,
        1e-8,
        6e-8,
        3e-8,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::from_bits(1),
    ];
    for h in 0..0x7c00u16 {
        let a = f16::from_bits(h).to_f32();
        let b = f16::from_bits(h + 1).to_f32();
        let mid = (a + b) / 2.0;
        for v in [
            a,
            mid,
            f32::from_bits(mid.to_bits() + 1),
            f32::from_bits(mid.to_bits().saturating_sub(1)),
        ] {
            xs.push(v);
            xs.push(-v);
        }
    }
    let want: Vec<f32> = xs.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    for level in levels() {
        // Every tail length: the vector loops' last, padded, step.
        for cut in 0..8 {
            let mut got = xs[..xs.len() - cut].to_vec();
            round_to_f16_at(level, &mut got);
            for (i, g) in got.iter().enumerate() {
                assert_eq!(
                    g.to_bits(),
                    want[i].to_bits(),
                    "{level:?} x = {:e} (cut {cut})",
                    xs[i]
                );
            }
        }
    }
    let mut public = xs.clone();
    round_to_f16(&mut public);
    assert_same(&public, &want, "round_to_f16 on the process's level");
}

/// Arguments for the exponential: ordinary scores, the clamp's edges, infinities, NaN, both
/// zeros, subnormals, and the exact ties of `x · log2 e` between two integers (where
/// rounding to even decides `n`); and how many ties it found.
fn exp_inputs() -> (Vec<f32>, usize) {
    let mut v = vec![
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::from_bits(1),
        -f32::from_bits(1),
        1e-30,
        -1e-30,
        crate::formats::exp::LO,
        crate::formats::exp::HI,
        crate::formats::exp::LO.next_down(),
        crate::formats::exp::HI.next_up(),
        -1000.0,
        1000.0,
    ];
    let mut ties = 0;
    for k in -126..127 {
        let t = k as f32 + 0.5;
        let x0 = t / crate::formats::exp::LOG2E;
        for x in [x0.next_down(), x0, x0.next_up()] {
            if x * crate::formats::exp::LOG2E == t {
                v.push(x);
                ties += 1;
            }
        }
    }
    let mut rnd = rng(0x853c49e6748fea9b, 240.0);
    v.extend((0..200).map(|_| rnd() - 60.0));
    (v, ties)
}

#[test]
fn exp_lanes_equal_the_definition_bit_for_bit() {
    let (inputs, ties) = exp_inputs();
    assert!(ties > 20, "only {ties} exact ties of x · log2 e found");
    let mut rnd = rng(0x1234_5678_9abc_def1, 120.0);
    for n in (0..=17).chain([40, inputs.len()]) {
        // Rotate through the inputs so every special value lands in every lane and tail.
        for start in [0, 3, 11] {
            let x: Vec<f32> = (0..n).map(|i| inputs[(start + i) % inputs.len()]).collect();
            let m: Vec<f32> = (0..n).map(|_| rnd() * 0.1).collect();
            let s0: Vec<f32> = (0..n).map(|_| rnd().abs()).collect();
            let up: Vec<f32> = (0..n).map(|_| rnd() * 0.01).collect();
            let e_want: Vec<f32> = (0..n).map(|i| crate::exp_f32(x[i] - m[i])).collect();
            let s_want: Vec<f32> = (0..n).map(|i| s0[i] + e_want[i]).collect();
            let one_want: Vec<f32> = x.iter().map(|&v| crate::exp_f32(v - 1.5)).collect();
            let g_want: Vec<f32> = (0..n)
                .map(|i| x[i] / (1.0 + crate::exp_f32(-x[i])) * up[i])
                .collect();
            for level in levels() {
                let what = format!("{level:?} n {n} start {start}");
                let (mut got, mut sums) = (x.clone(), s0.clone());
                exp_sub_rows_at(level, &mut got, &m, &mut sums);
                assert_same(&got, &e_want, &format!("exp_sub_rows {what}"));
                assert_same(&sums, &s_want, &format!("exp_sub_rows sums {what}"));
                let mut one = x.clone();
                exp_sub_at(level, &mut one, 1.5);
                assert_same(&one, &one_want, &format!("exp_sub {what}"));
                let mut g = x.clone();
                swiglu_at(level, &mut g, &up);
                assert_same(&g, &g_want, &format!("swiglu {what}"));
            }
        }
    }
    // The public entry points run the process's level.
    let mut x = inputs.clone();
    exp_sub(&mut x, 0.25);
    let want: Vec<f32> = inputs.iter().map(|&v| crate::exp_f32(v - 0.25)).collect();
    assert_same(&x, &want, "public exp_sub");
}
