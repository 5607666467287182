//! Every kernel checked against the CPU scalar reference (`hearth-kernels`' `vec_dot`,
//! `dequantize_row`, `swiglu`, and `hearth-model`'s norm, RoPE and GELU), on whatever device
//! is open. The crate's tests and `hearth gpu-selftest` run these same checks.
//!
//! The bounds, for output `y` of the CPU and `g` of the GPU:
//! - matrices, exact case: weights and activations on a 2^-5 grid (power-of-two scales) with
//!   `sum (|w| + 2|m|) |x| <= 2^14` per output (asserted on the data), so every partial sum is
//!   at most 2^24 units of 2^-10 and every float operation on either side is exact: `g == y`
//!   bit for bit, which also proves the i32 block sums exact;
//! - matrices, general case: `|g - y| <= 2 (4k + 16) 2^-24 S`, with `k` the units each thread
//!   adds (`cols / unit / 32`) and `S` the sum over elements of `(|w| + 2|m|) |x|` (`m` the
//!   block's offset: Q4_1's `m`, the K-quants' `dmin * min`): the standard `n u S` bound for
//!   the roundings of both sides;
//! - matrices, tiles: every tile shape and piece count gives the same bits as matrix-vector;
//! - RMS norm: relative `4 (n / 64 + 10) 2^-24` (the CPU sums its squares in f64);
//! - RoPE: both sides use the same cosines and sines: `2^-23 (|x0 c| + |x1 s|)`;
//! - SwiGLU: relative `(2|g| + 16) 2^-23` (Vulkan's `exp` is within `3 + 2|x|` ulp);
//! - GELU: the CPU rounds its input and output to f16 (llama.cpp's table):
//!   `(2^-11 |gelu(x)| + 1.2 2^-11 |x| + 2^-20 |x|) |u|`;
//! - softmax: relative `(2|x - max| + n / 64 + 24) 2^-23`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use hearth_gguf::GgmlType;
use hearth_kernels::{activation_type, dequantize_row, quantize_row, row_bytes, vec_dot};
use hearth_model::config::RopeStyle;
use hearth_model::ops::{geglu, rms_norm, Rope};

use crate::device::Gpu;
use crate::kernels::RopeLayout;
use crate::shaders::{MATMUL_TYPES, TILES};
use crate::Result;

/// One check's outcome.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// The worst error against its bound, or what differed.
    pub detail: String,
}

/// `worst`: the largest error as a fraction of its bound, or `None` for a bit-for-bit check.
fn check(name: String, worst: Option<f64>, bad: Option<String>) -> Check {
    let ok = match worst {
        Some(w) => format!("worst error {w:.3} of its bound"),
        None => "the same bits".to_string(),
    };
    Check {
        name,
        passed: bad.is_none(),
        detail: bad.unwrap_or(ok),
    }
}

/// Shape of the matrix checks: an odd row count (tiles overhang), several K-quant
/// super-blocks per row, a batch that is not a multiple of the tile.
pub const ROWS: usize = 37;
pub const COLS: usize = 1024;
pub const TOKENS: usize = 11;

/// Random weight rows of `ty` with power-of-two scales (see the module docs).
fn exact_weights(ty: GgmlType, rows: usize, cols: usize, rng: &mut StdRng) -> Vec<u8> {
    use GgmlType::*;
    let pow2 = |rng: &mut StdRng| {
        if rng.gen::<bool>() {
            0.0625f32
        } else {
            0.03125
        }
    };
    if matches!(ty, F32 | F16 | BF16) {
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| rng.gen_range(-16i32..=16) as f32 * pow2(rng))
            .collect();
        let mut out = vec![0u8; rows * row_bytes(ty, cols)];
        quantize_row(ty, &v, &mut out).expect("float encode");
        return out;
    }
    let mut out: Vec<u8> = (0..rows * row_bytes(ty, cols)).map(|_| rng.gen()).collect();
    let bs = ty.type_size();
    let set = |b: &mut [u8], off: usize, v: f32| {
        b[off..off + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes())
    };
    for block in out.chunks_exact_mut(bs) {
        match ty {
            Q4_0 | Q5_0 | Q8_0 => set(block, 0, pow2(rng)),
            Q4_1 | Q4_K | Q5_K => {
                set(block, 0, pow2(rng));
                set(block, 2, pow2(rng));
            }
            Q6_K => set(block, 208, pow2(rng)),
            other => unreachable!("no exact weights for {other}"),
        }
    }
    out
}

/// Random activation rows (as `activation_type(ty)` encodes them) with power-of-two scales
/// and `|x| <= 2^-4` (codes within 1 at scale 2^-4, within 2 at 2^-5): the widest weights
/// (Q6_K: 2^-4 x 128 x 32 = 256) then keep each output's sum within 2^14 over 1024 columns.
fn exact_activations(ty: GgmlType, tokens: usize, cols: usize, rng: &mut StdRng) -> Vec<u8> {
    use GgmlType::*;
    let xty = activation_type(ty).expect("activation type");
    let pow2 = |rng: &mut StdRng| {
        if rng.gen::<bool>() {
            0.0625f32
        } else {
            0.03125
        }
    };
    if matches!(xty, F32 | F16 | BF16) {
        return exact_weights(xty, tokens, cols, rng);
    }
    let mut out = vec![0u8; tokens * row_bytes(xty, cols)];
    let f16b = |v: f32| half::f16::from_f32(v).to_le_bytes();
    for block in out.chunks_exact_mut(xty.type_size()) {
        let d = pow2(rng);
        let lim = if d == 0.0625 { 1 } else { 2 };
        match xty {
            Q8_0 | Q8_1 => {
                let qo = block.len() - 32;
                let mut sum = 0i32;
                for q in &mut block[qo..] {
                    let v = rng.gen_range(-lim..=lim);
                    sum += v;
                    *q = v as i8 as u8;
                }
                block[0..2].copy_from_slice(&f16b(d));
                if xty == Q8_1 {
                    block[2..4].copy_from_slice(&f16b(d * sum as f32));
                }
            }
            Q8_K => {
                block[0..4].copy_from_slice(&d.to_le_bytes());
                let mut sums = [0i32; 16];
                for i in 0..256 {
                    let v = rng.gen_range(-lim..=lim);
                    sums[i / 16] += v;
                    block[4 + i] = v as i8 as u8;
                }
                for (g, s) in sums.iter().enumerate() {
                    block[260 + 2 * g..262 + 2 * g].copy_from_slice(&(*s as i16).to_le_bytes());
                }
            }
            other => unreachable!("no exact activations for {other}"),
        }
    }
    out
}

/// Rows of `ty` quantized from random floats, the way a model's weights and activations are.
fn random_rows(ty: GgmlType, rows: usize, cols: usize, rng: &mut StdRng) -> Vec<u8> {
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    let rb = row_bytes(ty, cols);
    let mut out = vec![0u8; rows * rb];
    for (src, dst) in v.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        quantize_row(ty, src, dst).expect("quantize");
    }
    out
}

fn cpu_matmul(
    ty: GgmlType,
    w: &[u8],
    x: &[u8],
    rows: usize,
    cols: usize,
    tokens: usize,
) -> Vec<f32> {
    let (wrb, xrb) = (
        row_bytes(ty, cols),
        row_bytes(activation_type(ty).unwrap(), cols),
    );
    let mut y = vec![0f32; rows * tokens];
    for t in 0..tokens {
        for r in 0..rows {
            y[t * rows + r] = vec_dot(
                ty,
                cols,
                &w[r * wrb..(r + 1) * wrb],
                &x[t * xrb..(t + 1) * xrb],
            );
        }
    }
    y
}

/// Per element of each row, the block offset that the dot product adds apart from the codes
/// (zero for the formats without one), found by decoding the row with its codes zeroed.
fn offsets(ty: GgmlType, w: &[u8], cols: usize) -> Vec<f32> {
    use GgmlType::*;
    let codes = match ty {
        Q4_1 => 4..20,
        Q4_K => 16..144,
        Q5_K => 16..176,
        _ => return vec![0.0; w.len() / row_bytes(ty, cols) * cols],
    };
    let mut zeroed = w.to_vec();
    for block in zeroed.chunks_exact_mut(ty.type_size()) {
        block[codes.clone()].fill(0);
    }
    let mut out = vec![0f32; w.len() / row_bytes(ty, cols) * cols];
    let rb = row_bytes(ty, cols);
    for (src, dst) in zeroed.chunks_exact(rb).zip(out.chunks_exact_mut(cols)) {
        dequantize_row(ty, src, dst).expect("dequantize");
    }
    out
}

fn decode(ty: GgmlType, bytes: &[u8], cols: usize) -> Vec<f32> {
    let rb = row_bytes(ty, cols);
    let mut out = vec![0f32; bytes.len() / rb * cols];
    for (src, dst) in bytes.chunks_exact(rb).zip(out.chunks_exact_mut(cols)) {
        dequantize_row(ty, src, dst).expect("dequantize");
    }
    out
}

fn unit(ty: GgmlType) -> usize {
    if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        1
    } else {
        32
    }
}

/// The exact case's precondition, checked on the data rather than trusted: every decoded
/// weight, offset and activation is a multiple of 2^-5, so every product and every partial
/// sum, in whatever grouping either side uses, is a multiple of 2^-10; and for each output
/// `S = sum (|w| + 2|m|) |x| <= 2^14` bounds every such partial sum, which is then at most
/// 2^24 units of 2^-10 and so exact in f32. A seed whose data break this would make the exact
/// check fail without any kernel being wrong, so it panics here instead.
fn assert_exact_precondition(ty: GgmlType, w: &[u8], x: &[u8]) {
    let xty = activation_type(ty).expect("activation type");
    let (wd, md, xd) = (
        decode(ty, w, COLS),
        offsets(ty, w, COLS),
        decode(xty, x, COLS),
    );
    let on_grid = |v: f32| (v as f64 * 32.0).fract() == 0.0;
    assert!(
        wd.iter().chain(&md).chain(&xd).all(|&v| on_grid(v)),
        "{}: exact data off the 2^-5 grid",
        ty.name()
    );
    for r in 0..ROWS {
        for t in 0..TOKENS {
            let s: f64 = (0..COLS)
                .map(|j| {
                    let i = r * COLS + j;
                    (wd[i].abs() as f64 + 2.0 * md[i].abs() as f64) * xd[t * COLS + j].abs() as f64
                })
                .sum();
            assert!(
                s <= 16384.0,
                "{}: exact data for row {r} token {t} sum to {s} > 2^14: not exact in f32",
                ty.name()
            );
        }
    }
}

/// The exact case: the GPU's matrix-vector and tiled results equal the CPU's bits.
pub fn matmul_exact(gpu: &Gpu, ty: GgmlType, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = exact_weights(ty, ROWS, COLS, &mut rng);
    let x = exact_activations(ty, TOKENS, COLS, &mut rng);
    let want = cpu_matmul(ty, &w, &x, ROWS, COLS, TOKENS);
    assert_exact_precondition(ty, &w, &x);
    let m = gpu.upload_matrix(ty, &w, ROWS, COLS)?;
    let mut bad = None;
    for tile in TILES {
        let got = gpu.matmul(&m, &x, TOKENS, tile)?;
        if let Some(i) = (0..want.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
            bad = Some(format!(
                "tile {tile:?}: token {} row {}: GPU {} CPU {}",
                i / ROWS,
                i % ROWS,
                got[i],
                want[i]
            ));
            break;
        }
    }
    Ok(check(format!("{} exact sums", ty.name()), None, bad))
}

/// Random data on two opened devices (the subgroup path and the path every adapter has):
/// every tile on either gives the bits of matrix-vector on `plain`.
pub fn matmul_paths_agree(plain: &Gpu, other: &Gpu, ty: GgmlType, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let xty = activation_type(ty)?;
    let w = random_rows(ty, ROWS, COLS, &mut rng);
    let x = random_rows(xty, TOKENS, COLS, &mut rng);
    let mp = plain.upload_matrix(ty, &w, ROWS, COLS)?;
    let mo = other.upload_matrix(ty, &w, ROWS, COLS)?;
    let want = plain.matmul(&mp, &x, TOKENS, (1, 1))?;
    let mut bad = None;
    'tiles: for tile in TILES {
        let got = other.matmul(&mo, &x, TOKENS, tile)?;
        for i in 0..want.len() {
            if got[i].to_bits() != want[i].to_bits() {
                bad = Some(format!(
                    "tile {tile:?}: token {} row {}: {} vs {}",
                    i / ROWS,
                    i % ROWS,
                    got[i],
                    want[i]
                ));
                break 'tiles;
            }
        }
    }
    Ok(check(format!("{} paths agree", ty.name()), None, bad))
}

/// The general case: random quantized data, within the stated bound.
pub fn matmul_bound(gpu: &Gpu, ty: GgmlType, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let xty = activation_type(ty)?;
    let w = random_rows(ty, ROWS, COLS, &mut rng);
    let x = random_rows(xty, TOKENS, COLS, &mut rng);
    let want = cpu_matmul(ty, &w, &x, ROWS, COLS, TOKENS);
    let (wd, md, xd) = (
        decode(ty, &w, COLS),
        offsets(ty, &w, COLS),
        decode(xty, &x, COLS),
    );
    let k = (COLS / unit(ty)).div_ceil(32) as f64;
    let m = gpu.upload_matrix(ty, &w, ROWS, COLS)?;
    let got = gpu.matmul(&m, &x, TOKENS, (1, 1))?;
    let mut worst = 0f64;
    let mut bad = None;
    for t in 0..TOKENS {
        for r in 0..ROWS {
            let s: f64 = (0..COLS)
                .map(|j| {
                    let i = r * COLS + j;
                    (wd[i].abs() as f64 + 2.0 * md[i].abs() as f64) * xd[t * COLS + j].abs() as f64
                })
                .sum();
            let bound = 2.0 * (4.0 * k + 16.0) * 2f64.powi(-24) * s + f64::MIN_POSITIVE;
            let (g, y) = (got[t * ROWS + r] as f64, want[t * ROWS + r] as f64);
            let ratio = (g - y).abs() / bound;
            worst = worst.max(ratio);
            if ratio > 1.0 && bad.is_none() {
                bad = Some(format!(
                    "token {t} row {r}: GPU {g} CPU {y}, bound {bound:.3e}"
                ));
            }
        }
    }
    Ok(check(
        format!("{} within bound", ty.name()),
        Some(worst),
        bad,
    ))
}

/// Batch invariance: tokens one at a time, every tile shape, and a matrix cut into pieces all
/// give the same bits.
pub fn matmul_tiles(gpu: &Gpu, ty: GgmlType, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let xty = activation_type(ty)?;
    let w = random_rows(ty, ROWS, COLS, &mut rng);
    let x = random_rows(xty, TOKENS, COLS, &mut rng);
    let m = gpu.upload_matrix(ty, &w, ROWS, COLS)?;
    let base = gpu.matmul(&m, &x, TOKENS, (1, 1))?;
    let xrb = row_bytes(xty, COLS);
    let mut bad = None;
    let mut compare = |what: String, got: &[f32], off: usize| {
        if bad.is_none() {
            if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != base[off + i].to_bits()) {
                bad = Some(format!(
                    "{what}: element {i}: {} vs {}",
                    got[i],
                    base[off + i]
                ));
            }
        }
    };
    for tile in [(4, 8), (2, 3), (1, 16), (8, 4)] {
        let got = gpu.matmul(&m, &x, TOKENS, tile)?;
        compare(format!("tile {tile:?}"), &got, 0);
    }
    for t in [0, TOKENS - 1] {
        let got = gpu.matmul(&m, &x[t * xrb..(t + 1) * xrb], 1, (4, 8))?;
        compare(format!("token {t} alone"), &got, t * ROWS);
    }
    let pieces = gpu.upload_matrix_in_pieces(ty, &w, ROWS, COLS, 5)?;
    let got = gpu.matmul(&pieces, &x, TOKENS, (4, 8))?;
    compare(format!("{} pieces", pieces.pieces()), &got, 0);
    Ok(check(format!("{} batch invariance", ty.name()), None, bad))
}

fn floats(n: usize, lo: f32, hi: f32, rng: &mut StdRng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

fn compare(name: &str, got: &[f32], want: &[f32], bound: impl Fn(usize) -> f64) -> Check {
    let mut worst = 0f64;
    let mut bad = None;
    for i in 0..want.len() {
        let b = bound(i) + 1e-37;
        let ratio = (got[i] as f64 - want[i] as f64).abs() / b;
        worst = worst.max(ratio);
        // NaN counts as a failure.
        if (ratio.is_nan() || ratio > 1.0) && bad.is_none() {
            bad = Some(format!(
                "element {i}: GPU {} CPU {}, bound {b:.3e}",
                got[i], want[i]
            ));
        }
    }
    check(name.to_string(), Some(worst), bad)
}

pub fn rms_norm_check(gpu: &Gpu, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (n, rows, eps) = (1000, 3, 1e-6);
    let x = floats(n * rows, -3.0, 3.0, &mut rng);
    let g = floats(n, 0.5, 1.5, &mut rng);
    let got = gpu.rms_norm(&x, &g, eps)?;
    let mut want = vec![0f32; x.len()];
    for (src, dst) in x.chunks_exact(n).zip(want.chunks_exact_mut(n)) {
        rms_norm(src, &g, eps, dst);
    }
    let rel = 4.0 * (n as f64 / 64.0 + 10.0) * 2f64.powi(-24);
    Ok(compare("rms norm", &got, &want, |i| {
        rel * want[i].abs() as f64
    }))
}

pub fn rope_check(gpu: &Gpu, layout: RopeLayout, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (heads, head_dim, rot_dim) = (3, 64, 48);
    let positions = [0u32, 1, 17, 4095, 31_000];
    let x = floats(positions.len() * heads * head_dim, -2.0, 2.0, &mut rng);
    let got = gpu.rope(
        &x, &positions, heads, head_dim, rot_dim, 10000.0, 1.0, layout,
    )?;
    let style = match layout {
        RopeLayout::Interleaved => RopeStyle::Interleaved,
        RopeLayout::Halves => RopeStyle::Halves,
    };
    let rope = Rope::new(style, rot_dim, 10000.0, 1.0);
    let mut want = x.clone();
    let tok = heads * head_dim;
    for (t, &pos) in positions.iter().enumerate() {
        rope.apply(&mut want[t * tok..(t + 1) * tok], head_dim, pos as usize);
    }
    // Each output is x0 c -/+ x1 s of inputs no larger than 2 and |c|, |s| <= 1.
    let name = format!("rope ({layout:?})");
    Ok(compare(&name, &got, &want, |i| {
        if i % head_dim < rot_dim {
            2f64.powi(-23) * 4.0
        } else {
            0.0
        }
    }))
}

pub fn swiglu_check(gpu: &Gpu, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let gate = floats(5000, -8.0, 8.0, &mut rng);
    let up = floats(5000, -2.0, 2.0, &mut rng);
    let got = gpu.glu(&gate, &up, false)?;
    let mut want = gate.clone();
    hearth_kernels::swiglu(&mut want, &up);
    Ok(compare("swiglu", &got, &want, |i| {
        (2.0 * gate[i].abs() as f64 + 16.0) * 2f64.powi(-23) * want[i].abs() as f64
    }))
}

pub fn gelu_check(gpu: &Gpu, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut gate = floats(5000, -6.0, 6.0, &mut rng);
    gate.extend([-12.0, 12.0, 0.0, -0.001]);
    let up = floats(gate.len(), -2.0, 2.0, &mut rng);
    let got = gpu.glu(&gate, &up, true)?;
    let mut want = gate.clone();
    geglu(&mut want, &up);
    Ok(compare("gelu", &got, &want, |i| {
        let (x, u) = (gate[i].abs() as f64, up[i].abs() as f64);
        let gelu = (want[i] as f64 / up[i] as f64).abs();
        (2f64.powi(-11) * gelu + 1.2 * 2f64.powi(-11) * x + 2f64.powi(-20) * x) * u
    }))
}

pub fn softmax_check(gpu: &Gpu, seed: u64) -> Result<Check> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (n, rows) = (1000, 3);
    let x = floats(n * rows, -10.0, 10.0, &mut rng);
    let got = gpu.softmax(&x, n)?;
    let mut want = x.clone();
    let mut dist = vec![0f64; x.len()];
    for (r, row) in want.chunks_exact_mut(n).enumerate() {
        let m = row.iter().copied().fold(f32::MIN, f32::max);
        hearth_kernels::exp_sub(row, m);
        let sum: f32 = row.iter().sum();
        for (j, v) in row.iter_mut().enumerate() {
            *v /= sum;
            dist[r * n + j] = (x[r * n + j] - m).abs() as f64;
        }
    }
    Ok(compare("softmax", &got, &want, |i| {
        (2.0 * dist[i] + n as f64 / 64.0 + 24.0) * 2f64.powi(-23) * want[i].abs() as f64
    }))
}

/// Every check, in the order of the self-test's table.
pub fn run_all(gpu: &Gpu, seed: u64) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    for ty in MATMUL_TYPES {
        out.push(matmul_exact(gpu, ty, seed)?);
        out.push(matmul_bound(gpu, ty, seed)?);
        out.push(matmul_tiles(gpu, ty, seed)?);
    }
    out.push(rms_norm_check(gpu, seed)?);
    out.push(rope_check(gpu, RopeLayout::Interleaved, seed)?);
    out.push(rope_check(gpu, RopeLayout::Halves, seed)?);
    out.push(swiglu_check(gpu, seed)?);
    out.push(gelu_check(gpu, seed)?);
    out.push(softmax_check(gpu, seed)?);
    Ok(out)
}
