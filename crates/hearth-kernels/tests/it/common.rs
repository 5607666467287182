//! Helpers shared by the test modules.

use hearth_kernels::{activation_type, quantize_row, row_bytes, GgmlType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The types this crate's float and legacy modules implement (the K types are tested in
/// their own module).
pub const MINE: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
];

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Values shaped like activations / weights: mostly small, a few outliers, a per-row scale.
pub fn random_values(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let scale: f32 = rng.gen_range(0.01..4.0);
    (0..n)
        .map(|_| {
            let v: f32 = rng.gen_range(-1.0..1.0);
            let outlier = rng.gen_bool(0.02);
            scale * if outlier { v * 8.0 } else { v }
        })
        .collect()
}

/// A weight row of `ty` built by quantizing random values.
pub fn quantized_row(rng: &mut StdRng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, n)];
    quantize_row(ty, &random_values(rng, n), &mut out).expect("quantize test row");
    out
}

/// A weight row of `ty` from random bytes (every quant code appears) with its f16 scale
/// fields set to modest finite values.
pub fn random_bytes_row(rng: &mut StdRng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, n)];
    rng.fill(&mut out[..]);
    let (bs, fields): (usize, &[usize]) = match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            // Random finite floats instead of random bits.
            let mut v = vec![0u8; out.len()];
            quantize_row(ty, &random_values(rng, n), &mut v).expect("encode floats");
            return v;
        }
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => (ty.type_size(), &[0]),
        GgmlType::Q4_1 | GgmlType::Q5_1 => (ty.type_size(), &[0, 2]),
        // K-quant f16 fields (ggml-common.h): Q2_K d, dmin after scales and quants; Q3_K d
        // last; Q4_K / Q5_K d, dmin first; Q6_K d last.
        GgmlType::Q2_K => (ty.type_size(), &[80, 82]),
        GgmlType::Q3_K => (ty.type_size(), &[108]),
        GgmlType::Q4_K | GgmlType::Q5_K => (ty.type_size(), &[0, 2]),
        GgmlType::Q6_K => (ty.type_size(), &[208]),
        GgmlType::IQ4_NL | GgmlType::IQ4_XS => (ty.type_size(), &[0]),
        GgmlType::IQ2_XXS | GgmlType::IQ2_XS | GgmlType::IQ3_XXS | GgmlType::IQ3_S => {
            (ty.type_size(), &[0])
        }
        GgmlType::MXFP4 => {
            // The E8M0 scale byte: 2^-18 .. 2^2 keeps products finite, as in real weights.
            for block in out.chunks_exact_mut(ty.type_size()) {
                block[0] = rng.gen_range(110..=130);
            }
            return out;
        }
        other => panic!("random_bytes_row: {other} not handled"),
    };
    for block in out.chunks_exact_mut(bs) {
        for &off in fields {
            let mag = 2f32.powf(rng.gen_range(-10.0..-2.0));
            let sign = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
            block[off..off + 2].copy_from_slice(&half::f16::from_f32(sign * mag).to_le_bytes());
        }
    }
    out
}

/// Random activations for weights of type `weight`, encoded as its activation type.
pub fn activation_row(rng: &mut StdRng, weight: GgmlType, n: usize) -> Vec<u8> {
    let act = activation_type(weight).expect("supported type");
    quantized_row(rng, act, n)
}

pub fn dequant(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    hearth_kernels::dequantize_row(ty, bytes, &mut out).expect("dequantize");
    out
}
