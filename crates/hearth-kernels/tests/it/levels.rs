//! The AVX-512 VNNI kernels (32-element formats and K-quants) against the AVX2 ones: `vec_dot`
//! and the multi-token tiles must give the same bits on both levels (the i32 lane sums are exact on
//! both, and everything after them is shared code), including at the extremes of every field:
//! all codes 0 or maximal, Q8_0 quants of -128 and 127, negative, huge, tiny and zero scales.
//! Skipped, with a note, on CPUs without VNNI.

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

/// Whether this CPU runs both levels; prints why not otherwise.
fn have_vnni() -> bool {
    let ok = simd::supported(Level::Avx512Vnni);
    if !ok {
        eprintln!("no AVX-512 VNNI on this CPU: nothing to compare against AVX2");
    }
    ok
}

#[test]
fn vnni_vec_dot_equals_avx2_bit_for_bit() {
    if !have_vnni() {
        return;
    }
    let mut r = rng(71);
    let mut checked = 0usize;
    for ty in LEGACY {
        let act = activation_type(ty).unwrap();
        for nb in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17, 40] {
            let n = nb * 32;
            for wf in FILLS {
                for xf in FILLS {
                    let w = row(&mut r, ty, nb, wf);
                    let x = row(&mut r, act, nb, xf);
                    let a = testing::vec_dot_at(Level::Avx2, ty, n, &w, &x).unwrap();
                    let v = testing::vec_dot_at(Level::Avx512Vnni, ty, n, &w, &x).unwrap();
                    assert_eq!(
                        a.to_bits(),
                        v.to_bits(),
                        "{ty} nb={nb} weights {wf:?} activations {xf:?}: AVX2 {a} vs VNNI {v}"
                    );
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} VNNI vec_dot results equal to AVX2");
}

#[test]
fn vnni_tiles_equal_avx2_and_vec_dot_bit_for_bit() {
    if !have_vnni() {
        return;
    }
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
                        row(&mut r, act, nb, f)
                    })
                    .collect();
                let mut out_a = vec![f32::NAN; rows * tokens];
                let mut out_v = vec![f32::NAN; rows * tokens];
                assert!(dot_tile_at(
                    Level::Avx2,
                    ty,
                    n,
                    &w,
                    rows,
                    &x,
                    tokens,
                    &mut out_a
                ));
                assert!(dot_tile_at(
                    Level::Avx512Vnni,
                    ty,
                    n,
                    &w,
                    rows,
                    &x,
                    tokens,
                    &mut out_v
                ));
                for t in 0..tokens {
                    for row in 0..rows {
                        let (wr, xr) = (&w[row * wrb..(row + 1) * wrb], &x[t * xrb..(t + 1) * xrb]);
                        let dot = testing::vec_dot_at(Level::Avx512Vnni, ty, n, wr, xr).unwrap();
                        let (a, v) = (out_a[t * rows + row], out_v[t * rows + row]);
                        assert_eq!(
                            (a.to_bits(), v.to_bits()),
                            (dot.to_bits(), dot.to_bits()),
                            "{ty} nb={nb}: row {row} of {rows}, token {t} of {tokens}: \
                             AVX2 tile {a}, VNNI tile {v}, VNNI vec_dot {dot}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} VNNI tile outputs equal to the AVX2 tiles and VNNI vec_dot");
}

#[test]
fn avx2_level_is_supported_under_vnni() {
    // The comparison above needs both levels in one process: a CPU with VNNI must also accept
    // the AVX2 level (and `HEARTH_SIMD=avx2` relies on it).
    if simd::detect() == Level::Avx512Vnni {
        assert!(simd::supported(Level::Avx2));
    }
    assert!(simd::supported(Level::Scalar));
    assert!(simd::supported(simd::detect()));
}

#[test]
fn vnni_k_quant_tiles_equal_avx2_bit_for_bit() {
    // The K-quant tiles' VNNI variant replaces `madd` + add by `vpdpwssd`: exact i32 lanes on
    // both levels. Random bytes reach every quant and scale code; a row of all-ones quant bytes
    // (scales kept finite) and constant ±1 activations (quants ±127) reach the largest products.
    if !have_vnni() {
        return;
    }
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
            let mut outs = [vec![f32::NAN; rows * tokens], vec![f32::NAN; rows * tokens]];
            for (level, out) in [Level::Avx2, Level::Avx512Vnni].into_iter().zip(&mut outs) {
                assert!(dot_tile_at(level, ty, n, &w, rows, &x, tokens, out));
            }
            for t in 0..tokens {
                for row in 0..rows {
                    let (wr, xr) = (&w[row * wrb..(row + 1) * wrb], &x[t * xrb..(t + 1) * xrb]);
                    // The AVX2 `vec_dot` (the VNNI one is checked against it above).
                    let dot = testing::vec_dot_at(Level::Avx2, ty, n, wr, xr).unwrap();
                    let (a, v) = (outs[0][t * rows + row], outs[1][t * rows + row]);
                    assert_eq!(
                        a.to_bits(),
                        v.to_bits(),
                        "{ty} nb={nb}: row {row}, token {t}: AVX2 tile {a} vs VNNI tile {v}"
                    );
                    assert_eq!(
                        v.to_bits(),
                        dot.to_bits(),
                        "{ty}: VNNI tile {v} vs vec_dot {dot}"
                    );
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} VNNI K-quant tile outputs equal to the AVX2 tiles");
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
fn vnni_k_quant_vec_dot_equals_avx2_bit_for_bit() {
    // Q4_K/Q5_K/Q6_K `vec_dot` swap `madd` + add for `vpdpwssd` at the VNNI level; Q2_K/Q3_K
    // keep their AVX2 code (checked too, so a later VNNI variant is covered). Extremes:
    // saturated quant and scale bytes, activation quants of ±127 and -128, the f16/f32
    // extremes, subnormals and signed zeros in the scales.
    if !have_vnni() {
        return;
    }
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
                        let a = testing::vec_dot_at(Level::Avx2, ty, n, &w, &x).unwrap();
                        let v = testing::vec_dot_at(Level::Avx512Vnni, ty, n, &w, &x).unwrap();
                        assert_eq!(
                            a.to_bits(),
                            v.to_bits(),
                            "{ty} nb={nb} weights {wf:?} activations {aq:?}: AVX2 {a} vs VNNI {v}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} VNNI K-quant vec_dot results equal to AVX2");
}

/// `values` encoded as `ty`.
fn encode(ty: GgmlType, values: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, values.len())];
    hearth_kernels::quantize_row(ty, values, &mut out).expect("encode activations");
    out
}
