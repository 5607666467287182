//! Quantize → dequantize round trips and the exact encodings of a few hand-made blocks.

use crate::common::*;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing;
use hearth_kernels::{dequantize_row, quantize_row, row_bytes, Error, GgmlType};

/// Largest allowed |x - x̂| for one block of `x`, from the format's step size.
fn bound(ty: GgmlType, block: &[f32]) -> f32 {
    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (min, max) = block
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    // f16 scales carry a relative error of 2^-11; that error is scaled by the largest code.
    let scale_err = amax * 2f32.powi(-10);
    match ty {
        // Symmetric types map the largest magnitude to the most negative code, so the far end
        // of the range can be clamped by a whole step.
        GgmlType::Q4_0 => amax / 8.0 + scale_err,
        GgmlType::Q5_0 => amax / 16.0 + scale_err,
        GgmlType::Q4_1 => (max - min) / 15.0 * 0.5 + scale_err,
        GgmlType::Q5_1 => (max - min) / 31.0 * 0.5 + scale_err,
        GgmlType::Q8_0 | GgmlType::Q8_1 => amax / 127.0 * 0.5 + scale_err,
        other => panic!("no bound for {other}"),
    }
}

#[test]
fn block_round_trip_error_is_bounded() {
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
    ];
    let mut r = rng(42);
    for &ty in &types {
        let n = 32 * 64;
        let x = random_values(&mut r, n);
        let mut q = vec![0u8; row_bytes(ty, n)];
        quantize_row(ty, &x, &mut q).unwrap();
        let y = dequant(ty, &q, n);
        let (mut sq, mut sq_step) = (0f64, 0f64);
        for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
            let b = bound(ty, xb);
            for (&a, &c) in xb.iter().zip(yb) {
                assert!((a - c).abs() <= b, "{ty}: {a} decoded as {c}, bound {b}");
                sq += ((a - c) as f64).powi(2);
            }
            sq_step += (b as f64).powi(2) * 32.0;
        }
        // Rounding error is roughly uniform over a step: RMS well below the worst case.
        assert!(
            sq < 0.5 * sq_step,
            "{ty}: mean squared error {sq} too large"
        );
    }
}

#[test]
fn float_round_trips() {
    let mut r = rng(7);
    let x = random_values(&mut r, 1000);
    for (ty, rel) in [
        (GgmlType::F32, 0.0),
        (GgmlType::F16, 2f32.powi(-11)),
        (GgmlType::BF16, 2f32.powi(-8)),
    ] {
        let mut q = vec![0u8; row_bytes(ty, x.len())];
        quantize_row(ty, &x, &mut q).unwrap();
        let y = dequant(ty, &q, x.len());
        for (&a, &b) in x.iter().zip(&y) {
            // f16 subnormals (below 2^-14) have an absolute step of 2^-24.
            assert!(
                (a - b).abs() <= a.abs() * rel + 2f32.powi(-25),
                "{ty}: {a} -> {b}"
            );
        }
    }
}

#[test]
fn f16_and_bf16_round_to_nearest_even() {
    // 1 + 2^-11 is halfway between f16 1.0 and 1.0 + 2^-10: ties go to the even 1.0.
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties go to 1 + 2^-9.
    let x = [1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)];
    let mut q = [0u8; 4];
    quantize_row(GgmlType::F16, &x, &mut q).unwrap();
    assert_eq!(
        dequant(GgmlType::F16, &q, 2),
        vec![1.0, 1.0 + 2f32.powi(-9)]
    );
    // Same for bf16 with its 7 fraction bits.
    let x = [1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8)];
    quantize_row(GgmlType::BF16, &x, &mut q).unwrap();
    assert_eq!(
        dequant(GgmlType::BF16, &q, 2),
        vec![1.0, 1.0 + 2f32.powi(-6)]
    );
    // NaN stays NaN (quiet), infinities stay infinite.
    let x = [f32::NAN, f32::INFINITY];
    quantize_row(GgmlType::BF16, &x, &mut q).unwrap();
    let y = dequant(GgmlType::BF16, &q, 2);
    assert!(y[0].is_nan() && y[1] == f32::INFINITY, "{y:?}");
}

#[test]
fn q8_activation_encoding_is_exact() {
    // amax 127 gives d = 1 and codes equal to the rounded values, ties to even.
    let mut x = [0f32; 32];
    x[0] = 127.0;
    x[1] = -2.5;
    x[2] = 3.5;
    x[3] = -0.5;
    x[4] = 10.0;
    let mut q = [0u8; 36];
    quantize_row(GgmlType::Q8_1, &x, &mut q).unwrap();
    assert_eq!(half::f16::from_le_bytes([q[0], q[1]]).to_f32(), 1.0);
    let codes: Vec<i8> = q[4..9].iter().map(|&b| b as i8).collect();
    assert_eq!(codes, vec![127, -2, 4, 0, 10]);
    // s = d * Σq.
    assert_eq!(
        half::f16::from_le_bytes([q[2], q[3]]).to_f32(),
        (127 - 2 + 4 + 10) as f32
    );

    let mut q0 = [0u8; 34];
    quantize_row(GgmlType::Q8_0, &x, &mut q0).unwrap();
    assert_eq!(&q0[..2], &q[..2]);
    assert_eq!(&q0[2..], &q[4..]);

    // An all-zero block encodes as all zeros (no division by zero).
    quantize_row(GgmlType::Q8_1, &[0.0; 32], &mut q).unwrap();
    assert!(q.iter().all(|&b| b == 0));
}

#[test]
fn q4_0_reference_encoding() {
    // Largest magnitude -8 → d = 1 exactly and code 0; value v maps to code v + 8.
    let x: Vec<f32> = (0..32).map(|i| (i % 16) as f32 - 8.0).collect();
    let mut q = [0u8; 18];
    quantize_row(GgmlType::Q4_0, &x, &mut q).unwrap();
    assert_eq!(half::f16::from_le_bytes([q[0], q[1]]).to_f32(), 1.0);
    for j in 0..16 {
        assert_eq!(q[2 + j], (j as u8) | ((j as u8) << 4), "byte {j}");
    }
    assert_eq!(dequant(GgmlType::Q4_0, &q, 32), x);
}

#[test]
fn q5_high_bits_round_trip() {
    // Codes 0..31 in both halves exercise every bit of qh.
    for ty in [GgmlType::Q5_0, GgmlType::Q5_1] {
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let mut q = vec![0u8; ty.type_size()];
        quantize_row(ty, &x, &mut q).unwrap();
        assert_eq!(dequant(ty, &q, 32), x, "{ty}");
    }
}

#[test]
fn sizes_are_checked() {
    let mut out = vec![0f32; 33];
    let err = dequantize_row(GgmlType::Q4_0, &[0u8; 18], &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadLength {
                n: 33,
                block: 32,
                ..
            }
        ),
        "{err}"
    );
    let mut out = vec![0f32; 32];
    let err = dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadBuffer {
                got: 17,
                want: 18,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("17") && err.to_string().contains("18"),
        "{err}"
    );
    let err = quantize_row(GgmlType::IQ2_XXS, &[0.0; 256], &mut [0u8; 66]).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(GgmlType::IQ2_XXS)),
        "{err}"
    );
}

#[test]
fn simd_activation_encoding_matches_scalar_bytes() {
    let mut r = rng(11);
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1] {
        for case in 0..20 {
            let n = 32 * 48;
            let mut x = random_values(&mut r, n);
            if case % 2 == 0 {
                // Exact ties after scaling (amax 127 makes id = 1): k + 0.5 must go to even.
                for (i, v) in x.iter_mut().enumerate() {
                    *v = if i % 32 == 0 {
                        127.0
                    } else {
                        ((i % 29) as f32 - 14.0) + 0.5
                    };
                }
            }
            let mut a = vec![0u8; row_bytes(ty, n)];
            let mut b = a.clone();
            testing::quantize_row_at(Level::Scalar, ty, &x, &mut a)
                .unwrap()
                .unwrap();
            match testing::quantize_row_at(simd::detect(), ty, &x, &mut b) {
                Some(res) => res.unwrap(),
                None => return,
            }
            assert_eq!(a, b, "{ty} case {case}");
            let mut c = vec![0u8; a.len()];
            quantize_row(ty, &x, &mut c).unwrap();
            assert_eq!(a, c, "{ty} case {case}: public quantize_row");
        }
    }
}
