//! Every SIMD level this CPU runs (AVX2 and AVX-512 VNNI on x86-64; NEON, dotprod and i8mm on
//! aarch64) against the scalar reference, for the 32-element formats and the K-quants:
//! `vec_dot` and the multi-token tiles must give the reference's bits (the i32 lane sums are
//! exact on every level, and the f32 steps follow the reference's order), including at the
//! extremes of every field: all codes 0 or maximal, Q8_0 quants of -128 and 127, negative,
//! huge, tiny and zero scales. Skipped, with a note, where the CPU has no SIMD level.

use crate::common::*;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing;
use hearth_kernels::testing::dot_tile_at;
use hearth_kernels::{activation_type, row_bytes, GgmlType};
use rand::rngs::StdRng;
use rand::Rng;

const LEGACY: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
];

/// Scale values that stress the f32 side: signs, the f16 extremes, subnormals and zeros.
const SCALES: [f32; 8] = [1.0, -1.0, 60000.0, -65504.0, 6.0e-8, -3.0e-5, 0.0, -0.0];

/// How a row's quant bytes are filled.
#[derive(Clone, Copy, Debug)]
enum Fill {
    Random,
    /// Every quant byte the same (0x00: codes 0; 0xff: largest codes, Q8_0 -1; 0x80: Q8_0
    /// -128; 0x7f: Q8_0 127).
    Byte(u8),
    /// Alternating -128 and 127 (Q8_0 quants).
    Alternating,
}

const FILLS: [Fill; 6] = [
    Fill::Random,
    Fill::Byte(0x00),
    Fill::Byte(0xff),
    Fill::Byte(0x80),
    Fill::Byte(0x7f),
    Fill::Alternating,
];

/// The byte ranges of the f16 scale fields in one block of `ty` (weights and activations).
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => &[0, 2],
        other => panic!("scale_fields: {other} is not a 32-element format"),
    }
}

/// A Q8_0 / Q8_1 activation row as [`row`] makes it, but with quants in -127..=127: the
/// encoder scales by the largest magnitude over 127, so -128 never occurs in an activation (the
/// x86 kernels' sign trick relies on it, as llama.cpp's do).
fn activations(rng: &mut StdRng, ty: GgmlType, nb: usize, fill: Fill) -> Vec<u8> {
    let mut out = row(rng, ty, nb, fill);
    let bs = ty.type_size();
    let first = 2 * scale_fields(ty).len();
    for block in out.chunks_exact_mut(bs) {
        for b in &mut block[first..] {
            if *b == 0x80 {
                *b = 0x81;
            }
        }
    }
    out
}

/// A row of `nb` blocks of `ty` whose quant bytes follow `fill` and whose scales are drawn
/// from [`SCALES`] or, half the time, random modest values.
fn row(rng: &mut StdRng, ty: GgmlType, nb: usize, fill: Fill) -> Vec<u8> {
    let bs = ty.type_size();
    let mut out = vec![0u8; nb * bs];
    rng.fill(&mut out[..]);
    let fields = scale_fields(ty);
    for block in out.chunks_exact_mut(bs) {
        for (j, b) in block.iter_mut().enumerate() {
            if fields.iter().any(|&f| j == f || j == f + 1) {
                continue;
            }
            match fill {
                Fill::Random => {}
                Fill::Byte(v) => *b = v,
                Fill::Alternating => *b = if j % 2 == 0 { 0x80 } else { 0x7f },
            }
        }
        for &f in fields {
            let v = if rng.gen_bool(0.5) {
                SCALES[rng.gen_range(0..SCALES.len())]
            } else {
                rng.gen_range(-4.0f32..4.0)
            };
            block[f..f + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    out
}

fn random_fill(rng: &mut StdRng) -> Fill {
    FILLS[rng.gen_range(0..FILLS.len())]
}

/// The SIMD levels this CPU runs; prints a note when there are none.
fn levels() -> Vec<Level> {
    let levels = simd::simd_levels();
    if levels.is_empty() {
        eprintln!("no SIMD level on this CPU: nothing to compare with the scalar reference");
    }
    levels
}

#[test]
fn every_level_vec_dot_equals_scalar_bit_for_bit() {
    let levels = levels();
    let mut r = rng(71);
    let mut checked = 0usize;
    for ty in LEGACY {
        let act = activation_type(ty).unwrap();
        for nb in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17, 40] {
            let n = nb * 32;
            for wf in FILLS {
                for xf in FILLS {
                    let w = row(&mut r, ty, nb, wf);
                    let x = activations(&mut r, act, nb, xf);
                    let a = testing::vec_dot_at(Level::Scalar, ty, n, &w, &x).unwrap();
                    for &level in &levels {
                        let v = testing::vec_dot_at(level, ty, n, &w, &x).unwrap();
                        assert!(
                            same(a, v),
                            "{ty} nb={nb} weights {wf:?} activations {xf:?}: \
                             scalar {a} vs {level:?} {v}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} SIMD vec_dot results equal to the scalar reference");
}

#[test]
fn every_level_tiles_equal_scalar_vec_dot_bit_for_bit() {
    let levels = levels();
    let mut r = rng(72);
    let mut checked = 0usize;
    for ty in LEGACY {
        let act = activation_type(ty).unwrap();
        // 1030 blocks exceed the tiles' scale buffer: the one-by-one fallback.
        for nb in [1usize, 3, 4, 5, 9, 18, 1030] {
            let n = nb * 32;
            let (wrb, xrb) = (row_bytes(ty, n), row_bytes(act, n));
            let shapes: &[(usize, usize)] = if nb > 100 {
                &[(3, 2)]
            } else {
                &[(1, 1), (2, 4), (3, 5), (5, 8), (4, 3)]
            };
            for &(rows, tokens) in shapes {
                let w: Vec<u8> = (0..rows)
                    .flat_map(|_| {
                        let f = random_fill(&mut r);
                        row(&mut r, ty, nb, f)
                    })
                    .collect();
                let x: Vec<u8> = (0..tokens)
                    .flat_map(|_| {
                        let f = random_fill(&mut r);
                        activations(&mut r, act, nb, f)
                    })
                    .collect();
                for &level in &levels {
                    let mut out = vec![f32::NAN; rows * tokens];
                    assert!(
                        dot_tile_at(level, ty, n, &w, rows, &x, tokens, &mut out),
                        "{ty} has no tile kernel at {level:?}"
                    );
                    for t in 0..tokens {
                        for row in 0..rows {
                            let (wr, xr) =
                                (&w[row * wrb..(row + 1) * wrb], &x[t * xrb..(t + 1) * xrb]);
                            let dot = testing::vec_dot_at(Level::Scalar, ty, n, wr, xr).unwrap();
                            let v = out[t * rows + row];
                            assert!(
                                same(v, dot),
                                "{ty} nb={nb}: row {row} of {rows}, token {t} of {tokens}: \
                                 {level:?} tile {v}, scalar vec_dot {dot}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("{checked} SIMD tile outputs equal to the scalar vec_dot");
}

#[test]
fn levels_below_the_detected_one_are_supported() {
    // The comparisons above run every level in one process: a CPU with VNNI must also accept
    // the AVX2 level, one with i8mm the dotprod and plain NEON levels (`HEARTH_SIMD=avx2`,
    // `=dotprod` and `=neon` rely on it).
    let best = simd::detect();
    assert!(simd::supported(Level::Scalar));
    assert!(simd::supported(best));
    let below: &[Level] = match best {
        Level::Avx512Vnni => &[Level::Avx2],
        Level::NeonI8mm => &[Level::NeonDot, Level::Neon],
        Level::NeonDot => &[Level::Neon],
        _ => &[],
    };
    for &l in below {
        assert!(simd::supported(l), "{l:?} under {best:?}");
    }
    assert_eq!(
        simd::simd_levels().last().copied().unwrap_or(Level::Scalar),
        best
    );
}

#[test]
fn every_level_k_quant_tiles_equal_scalar_bit_for_bit() {
    // Exact i32 lanes on every level (the VNNI variant replaces `madd` + add by `vpdpwssd`).
    // Random bytes reach every quant and scale code; a row of all-ones quant bytes (scales kept
    // finite) and constant ±1 activations (quants ±127) reach the largest products.
    let levels = levels();
    let mut r = rng(73);
    let mut checked = 0usize;
    for ty in [GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        let act = activation_type(ty).unwrap();
        for nb in [1usize, 2, 3, 5] {
            let n = nb * ty.block_size();
            let (wrb, xrb) = (row_bytes(ty, n), row_bytes(act, n));
            let (rows, tokens) = (3, 6);
            let mut w: Vec<u8> = (0..rows)
                .flat_map(|_| random_bytes_row(&mut r, ty, n))
                .collect();
            let scale_bytes: &[usize] = match ty {
                GgmlType::Q6_K => &[208, 209],
                _ => &[0, 1, 2, 3],
            };
            for (i, b) in w[..wrb].iter_mut().enumerate() {
                if !scale_bytes.contains(&(i % ty.type_size())) {
                    *b = 0xff;
                }
            }
            let mut x = Vec::new();
            for t in 0..tokens {
                let row = match t {
                    0 => encode(act, &vec![1.0; n]),
                    1 => encode(act, &vec![-1.0; n]),
                    _ => activation_row(&mut r, ty, n),
                };
                x.extend_from_slice(&row);
            }
            for &level in &levels {
                let mut out = vec![f32::NAN; rows * tokens];
                assert!(
                    dot_tile_at(level, ty, n, &w, rows, &x, tokens, &mut out),
                    "{ty} has no tile kernel at {level:?}"
                );
                for t in 0..tokens {
                    for row in 0..rows {
                        let (wr, xr) = (&w[row * wrb..(row + 1) * wrb], &x[t * xrb..(t + 1) * xrb]);
                        let dot = testing::vec_dot_at(Level::Scalar, ty, n, wr, xr).unwrap();
                        let v = out[t * rows + row];
                        assert!(
                            same(v, dot),
                            "{ty} nb={nb}: row {row}, token {t}: {level:?} tile {v} vs scalar {dot}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} SIMD K-quant tile outputs equal to the scalar reference");
}

/// The f16 scale fields of one K-quant block (offsets as in `random_bytes_row`).
fn k_scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        other => panic!("k_scale_fields: {other} is not a K-quant"),
    }
}

/// A K-quant weight row: every byte but the f16 scales follows `fill` (0xff saturates every
/// quant code, sub-block scale and min; 0x00 zeroes them; 0x80 gives Q6_K scales of -128),
/// the f16 scales come from [`SCALES`] or modest random values.
fn k_row(rng: &mut StdRng, ty: GgmlType, nb: usize, fill: Fill) -> Vec<u8> {
    let mut out = random_bytes_row(rng, ty, nb * ty.block_size());
    let fields = k_scale_fields(ty);
    for block in out.chunks_exact_mut(ty.type_size()) {
        for (j, b) in block.iter_mut().enumerate() {
            if fields.iter().any(|&f| j == f || j == f + 1) {
                continue;
            }
            match fill {
                Fill::Random => {}
                Fill::Byte(v) => *b = v,
                Fill::Alternating => *b = if j % 2 == 0 { 0x80 } else { 0x7f },
            }
        }
        if rng.gen_bool(0.5) {
            for &f in fields {
                let v = SCALES[rng.gen_range(0..SCALES.len())];
                block[f..f + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
            }
        }
    }
    out
}

/// A Q8_K activation row of `nb` blocks whose quants are all `q` (or random in -128..=127
/// when `None`), with consistent group sums and a scale from [`SCALES`] or random.
fn q8k_row(rng: &mut StdRng, nb: usize, q: Option<i8>) -> Vec<u8> {
    let bs = GgmlType::Q8_K.type_size();
    let mut out = vec![0u8; nb * bs];
    for block in out.chunks_exact_mut(bs) {
        let d = if rng.gen_bool(0.5) {
            SCALES[rng.gen_range(0..SCALES.len())]
        } else {
            rng.gen_range(-2.0f32..2.0)
        };
        block[..4].copy_from_slice(&d.to_le_bytes());
        let qs: Vec<i8> = (0..256).map(|_| q.unwrap_or_else(|| rng.gen())).collect();
        for (b, &v) in block[4..260].iter_mut().zip(&qs) {
            *b = v as u8;
        }
        for (g, chunk) in qs.chunks_exact(16).enumerate() {
            let sum: i16 = chunk.iter().map(|&v| v as i16).sum();
            block[260 + 2 * g..262 + 2 * g].copy_from_slice(&sum.to_le_bytes());
        }
    }
    out
}

#[test]
fn every_level_k_quant_vec_dot_equals_scalar_bit_for_bit() {
    // Every K-quant on every level. Extremes: saturated quant and scale bytes, activation
    // quants of ±127 and -128, the f16/f32 extremes, subnormals and signed zeros in the scales.
    let levels = levels();
    let mut r = rng(74);
    let mut checked = 0usize;
    let kinds = [
        Fill::Random,
        Fill::Byte(0xff),
        Fill::Byte(0x00),
        Fill::Byte(0x80),
    ];
    let acts = [None, Some(127i8), Some(-127), Some(-128), Some(1)];
    for ty in [
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        for nb in [1usize, 2, 3, 5, 8, 14, 74] {
            let n = nb * ty.block_size();
            for wf in kinds {
                for aq in acts {
                    let w = k_row(&mut r, ty, nb, wf);
                    let mut xs = vec![q8k_row(&mut r, nb, aq)];
                    if aq.is_none() {
                        xs.push(activation_row(&mut r, ty, n));
                    }
                    for x in xs {
                        let a = testing::vec_dot_at(Level::Scalar, ty, n, &w, &x).unwrap();
                        for &level in &levels {
                            let v = testing::vec_dot_at(level, ty, n, &w, &x).unwrap();
                            assert!(
                                same(a, v),
                                "{ty} nb={nb} weights {wf:?} activations {aq:?}: \
                                 scalar {a} vs {level:?} {v}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("{checked} SIMD K-quant vec_dot results equal to the scalar reference");
}

/// `values` encoded as `ty`.
fn encode(ty: GgmlType, values: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, values.len())];
    hearth_kernels::quantize_row(ty, values, &mut out).expect("encode activations");
    out
}

/// The same bits (NaNs included: extreme scales reach ∞ − ∞, and the levels must agree on
/// those too).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits()
}

#[test]
fn every_level_reads_a_buffer_to_the_xor_of_its_words() {
    // The reference against a hand count: words xor to the known value, a partial last word
    // is zero-padded, and nothing is no words.
    let words: Vec<u64> = (0..37u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let want = words.iter().fold(0, |a, w| a ^ w);
    assert_eq!(testing::xor_words_reference(&bytes), want);
    assert_eq!(testing::xor_words_reference(&[1, 2, 3]), 0x03_02_01);
    assert_eq!(testing::xor_words_reference(&[]), 0);
    // Every level against the reference, at every length around the 256-byte step and at
    // every alignment of the start.
    let mut r = rng(73);
    let buf: Vec<u8> = (0..4096 + 64).map(|_| r.gen()).collect();
    for level in levels() {
        for start in 0..64 {
            for len in (0..600).chain([4000, 4096]) {
                let b = &buf[start..start + len];
                assert_eq!(
                    testing::xor_words_at(level, b),
                    Some(testing::xor_words_reference(b)),
                    "{level:?} start {start} len {len}"
                );
            }
        }
    }
}
