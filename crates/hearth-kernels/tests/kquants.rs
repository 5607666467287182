//! K-quant kernels through the public API: Q8_K activation encoding, dequantization and dot
//! products, checked against an f64 reference and against numbers produced by ggml itself
//! (`tests/kquants/ggml_ref.json`, written by `tests/kquants/gen_ggml_ref.py`).

use hearth_gguf::QK_K;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing::vec_dot_at;
use hearth_kernels::{activation_type, dequantize_row, quantize_row, row_bytes, vec_dot, GgmlType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const K_TYPES: [GgmlType; 5] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Offsets of the f16 super-block scales (`d`, then `dmin` where the type has one).
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        other => panic!("not a K weight type: {other}"),
    }
}

/// A row of `nb` random but valid blocks: random quants and packed scales, finite f16
/// super-block scales of modest size and either sign.
fn random_weights(ty: GgmlType, nb: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut w = vec![0u8; row_bytes(ty, nb * QK_K)];
    rng.fill(&mut w[..]);
    for block in w.chunks_exact_mut(ty.type_size()) {
        for &off in scale_offsets(ty) {
            let sign = if rng.gen::<bool>() { 1.0 } else { -1.0 };
            let d = half::f16::from_f32(sign * rng.gen_range(0.001f32..0.05));
            block[off..off + 2].copy_from_slice(&d.to_le_bytes());
        }
    }
    w
}

/// Activations with a little structure: Gaussian-ish values, sometimes an outlier.
fn random_activations(n: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum();
            if rng.gen_range(0..200) == 0 {
                v * 30.0
            } else {
                v
            }
        })
        .collect()
}

fn q8k(x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(GgmlType::Q8_K, x.len())];
    quantize_row(GgmlType::Q8_K, x, &mut out).expect("Q8_K quantization");
    out
}

fn dequant(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, bytes, &mut out).expect("dequantization");
    out
}

/// Exact-ish reference: f64 dot product of the dequantized rows, and Σ|w·x| for tolerances.
fn reference_dot(w: &[f32], x: &[f32]) -> (f64, f64) {
    let dot = w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
    let mag = w
        .iter()
        .zip(x)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum();
    (dot, mag)
}

#[test]
fn k_types_pair_with_q8_k() {
    for ty in K_TYPES {
        assert_eq!(activation_type(ty).unwrap(), GgmlType::Q8_K, "{ty}");
    }
}

#[test]
fn vec_dot_matches_f64_dot_of_dequantized_rows() {
    let mut rng = StdRng::seed_from_u64(0x6b71_7561);
    for ty in K_TYPES {
        for nb in [1, 2, 7, 16] {
            let n = nb * QK_K;
            for trial in 0..8 {
                let w = random_weights(ty, nb, &mut rng);
                let xq = q8k(&random_activations(n, &mut rng));
                let got = vec_dot(ty, n, &w, &xq) as f64;
                let (want, mag) =
                    reference_dot(&dequant(ty, &w, n), &dequant(GgmlType::Q8_K, &xq, n));
                let err = (got - want).abs();
                assert!(
                    err <= 2e-6 * mag + 1e-30,
                    "{ty} n={n} trial {trial}: vec_dot {got} vs f64 {want} (error {err:e}, \
                     Σ|w·x| {mag:e})"
                );
            }
        }
    }
}

/// Checks one Q8_K row against the definition (ggml's `quantize_row_q8_K_ref`).
fn check_q8k_row(x: &[f32]) {
    let bytes = q8k(x);
    let back = dequant(GgmlType::Q8_K, &bytes, x.len());
    for (b, (block, xs)) in bytes
        .chunks_exact(292)
        .zip(x.chunks_exact(QK_K))
        .enumerate()
    {
        let d = f32::from_le_bytes(block[0..4].try_into().unwrap());
        let qs: Vec<i8> = block[4..260].iter().map(|&q| q as i8).collect();
        let max = xs
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        if max == 0.0 {
            assert!(
                block.iter().all(|&b| b == 0),
                "block {b}: an all-zero block encodes as zeros"
            );
            continue;
        }
        let iscale = -127.0f32 / max;
        assert_eq!(d.to_bits(), (1.0 / iscale).to_bits(), "block {b}: d");
        for (i, (&q, &v)) in qs.iter().zip(xs).enumerate() {
            let want = (iscale * v).round_ties_even().min(127.0) as i8;
            assert_eq!(q, want, "block {b} element {i}: {v} · {iscale}");
            let err = (back[b * QK_K + i] - v).abs();
            assert!(
                err <= 0.5001 * d.abs(),
                "block {b} element {i}: {v} decoded as {}",
                back[b * QK_K + i]
            );
        }
        assert!(
            qs.contains(&-127),
            "block {b}: the largest magnitude maps to -127"
        );
        for g in 0..16 {
            let bsum = i16::from_le_bytes([block[260 + 2 * g], block[261 + 2 * g]]);
            let want: i32 = qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(bsum as i32, want, "block {b} bsum {g}");
        }
    }
}

#[test]
fn q8_k_quantization_follows_ggml_definition() {
    let mut rng = StdRng::seed_from_u64(8);
    for _ in 0..20 {
        check_q8k_row(&random_activations(4 * QK_K, &mut rng));
    }
    let mut special = vec![0f32; 6 * QK_K];
    // Block 0 stays zero. Block 1: one positive value dominates (d < 0 stays exact).
    special[QK_K + 3] = 1e4;
    special[QK_K + 9] = -3.0;
    // Block 2: all negative. Block 3: tiny values. Block 4: huge values. Block 5: ties.
    for i in 0..QK_K {
        special[2 * QK_K + i] = -1.0 - i as f32;
        special[3 * QK_K + i] = (i as f32 - 100.0) * 1e-30;
        special[4 * QK_K + i] = (i as f32 - 128.0) * 1e30;
        special[5 * QK_K + i] = (i as f32 - 127.0) * 0.5;
    }
    check_q8k_row(&special);
}

#[test]
fn k_quant_buffers_are_sized_per_256_block() {
    let mut out = vec![0f32; 100];
    assert!(dequantize_row(GgmlType::Q4_K, &[0u8; 144], &mut out).is_err());
    let mut bytes = vec![0u8; 291];
    assert!(quantize_row(GgmlType::Q8_K, &[0f32; 256], &mut bytes).is_err());
}

// ---------------------------------------------------------------------------------------------
// Against ggml itself
// ---------------------------------------------------------------------------------------------

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn f32s(s: &str) -> Vec<f32> {
    hex(s)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn ggml_ref() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kquants/ggml_ref.json");
    let text = std::fs::read_to_string(path).expect("reading ggml_ref.json");
    serde_json::from_str(&text).expect("parsing ggml_ref.json")
}

fn ty_named(name: &str) -> GgmlType {
    K_TYPES
        .into_iter()
        .find(|t| t.name() == name)
        .expect("K type name")
}

#[test]
fn q8_k_bytes_equal_ggml() {
    let doc = ggml_ref();
    let xs = doc["x"].as_array().unwrap();
    let qs = doc["x_q8k"].as_array().unwrap();
    for (i, (x, q)) in xs.iter().zip(qs).enumerate() {
        let got = q8k(&f32s(x.as_str().unwrap()));
        assert_eq!(got, hex(q.as_str().unwrap()), "activation row {i}");
    }
}

#[test]
fn dequantize_equals_ggml() {
    let doc = ggml_ref();
    let n = doc["n"].as_u64().unwrap() as usize;
    for (name, t) in doc["types"].as_object().unwrap() {
        let ty = ty_named(name);
        for (r, row) in t["rows"].as_array().unwrap().iter().enumerate() {
            let got = dequant(ty, &hex(row["w"].as_str().unwrap()), n);
            let want = f32s(row["dequant"].as_str().unwrap());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{name} row {r} element {i}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn vec_dot_agrees_with_ggml() {
    let doc = ggml_ref();
    let n = doc["n"].as_u64().unwrap() as usize;
    let xq: Vec<Vec<u8>> = doc["x_q8k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| hex(q.as_str().unwrap()))
        .collect();
    for (name, t) in doc["types"].as_object().unwrap() {
        let ty = ty_named(name);
        for (r, row) in t["rows"].as_array().unwrap().iter().enumerate() {
            let w = hex(row["w"].as_str().unwrap());
            let wf = dequant(ty, &w, n);
            for (j, want) in row["dot"].as_array().unwrap().iter().enumerate() {
                let want = f32::from_bits(want.as_u64().unwrap() as u32) as f64;
                let got = vec_dot(ty, n, &w, &xq[j]) as f64;
                let (_, mag) = reference_dot(&wf, &dequant(GgmlType::Q8_K, &xq[j], n));
                // Both sides sum exact integers per block; they differ only in how the f32
                // block results are accumulated, a few ulps of Σ|w·x|.
                assert!(
                    (got - want).abs() <= 1e-6 * mag + 1e-30,
                    "{name} row {r} x {j}: {got} vs ggml {want} (Σ|w·x| {mag:e})"
                );
            }
        }
    }
}

#[test]
fn weight_quantizers_write_ggml_bytes() {
    let doc = ggml_ref();
    let n = doc["n"].as_u64().unwrap() as usize;
    for (name, t) in doc["types"].as_object().unwrap() {
        let ty = ty_named(name);
        let src = f32s(t["quant_src"].as_str().unwrap());
        let mut got = vec![0u8; row_bytes(ty, n)];
        quantize_row(ty, &src, &mut got).expect("weight quantization");
        let want = hex(t["quant_out"].as_str().unwrap());
        for (b, (g, w)) in got
            .chunks(ty.type_size())
            .zip(want.chunks(ty.type_size()))
            .enumerate()
        {
            assert_eq!(g, w, "{name} block {b}");
        }
    }
}

#[test]
fn weight_quantizers_round_trip() {
    // Relative RMS error of quantize → dequantize on Gaussian-ish rows: a loose ceiling per
    // type (about 1.4x what ggml's algorithms reach on this data), which a broken packing
    // or scale would blow through.
    let ceilings = [
        (GgmlType::Q2_K, 0.35),
        (GgmlType::Q3_K, 0.2),
        (GgmlType::Q4_K, 0.11),
    ];
    let more = [(GgmlType::Q5_K, 0.065), (GgmlType::Q6_K, 0.045)];
    let mut rng = StdRng::seed_from_u64(99);
    for (ty, ceiling) in ceilings.into_iter().chain(more) {
        let n = 8 * QK_K;
        let mut x = random_activations(n, &mut rng);
        x[5..300].iter_mut().for_each(|v| *v *= 0.01); // a quiet stretch
        x[512..768].iter_mut().for_each(|v| *v = 0.0); // and a silent block
        let mut q = vec![0u8; row_bytes(ty, n)];
        quantize_row(ty, &x, &mut q).unwrap();
        let back = dequant(ty, &q, n);
        let err: f64 = x
            .iter()
            .zip(&back)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum();
        let energy: f64 = x.iter().map(|&a| (a as f64).powi(2)).sum();
        let rel = (err / energy).sqrt();
        assert!(
            rel < ceiling,
            "{ty}: relative RMS error {rel:.4} (ceiling {ceiling})"
        );
        assert!(
            back[512..768].iter().all(|&v| v == 0.0),
            "{ty}: a zero block decodes to zeros"
        );
    }
}

#[test]
fn every_level_equals_scalar_on_quantized_weights() {
    // Weights as real models hold them (ggml's quantizers on Gaussian-ish rows, and ggml's own
    // rows from the reference file) against real Q8_K activations: every SIMD level this CPU
    // runs must give the scalar reference's bits.
    let levels = simd::simd_levels();
    if levels.is_empty() {
        eprintln!("no SIMD level on this CPU: nothing to compare with the scalar reference");
    }
    let mut rng = StdRng::seed_from_u64(0x51_4d44);
    let mut pairs: Vec<(GgmlType, usize, Vec<u8>, Vec<u8>)> = Vec::new();
    for ty in K_TYPES {
        for nb in [1, 3, 11] {
            let n = nb * QK_K;
            let mut w = vec![0u8; row_bytes(ty, n)];
            quantize_row(ty, &random_activations(n, &mut rng), &mut w).unwrap();
            pairs.push((ty, n, w, q8k(&random_activations(n, &mut rng))));
        }
    }
    let doc = ggml_ref();
    let n = doc["n"].as_u64().unwrap() as usize;
    let xq: Vec<Vec<u8>> = doc["x_q8k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| hex(q.as_str().unwrap()))
        .collect();
    for (name, t) in doc["types"].as_object().unwrap() {
        let ty = ty_named(name);
        for row in t["rows"].as_array().unwrap() {
            for x in &xq {
                pairs.push((ty, n, hex(row["w"].as_str().unwrap()), x.clone()));
            }
        }
    }
    for (ty, n, w, x) in &pairs {
        let want = vec_dot_at(Level::Scalar, *ty, *n, w, x).unwrap();
        for &level in &levels {
            let got = vec_dot_at(level, *ty, *n, w, x).unwrap();
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{ty} n={n} {level:?}: {got} vs scalar {want}"
            );
        }
    }
    eprintln!("{} pairs checked on {levels:?}", pairs.len());
}
