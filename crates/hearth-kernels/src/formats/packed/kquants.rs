//! Packed ("interleaved") Q4_K and Q6_K: eight weight rows per group, laid out so that one
//! 32-byte load feeds one i32 lane per row, and their kernels against Q8_K activations.
//!
//! # Why
//! Row-major K-quant kernels do a block's float work (convert the integer sums, scale, FMA)
//! and a horizontal reduction once per row. With eight rows interleaved, `vpdpbusd` (or
//! `maddubs` + `madd`) leaves row `r`'s running sum in lane `r`, so the float work runs on
//! eight rows at once and nothing is reduced horizontally.
//!
//! # Numerics (the contract; [`dot_ref`] is its definition)
//! Per (row, token) and super-block `b` in order, with `acc` an f32 starting at 0:
//! - Q4_K: `isum = Σ_j sc[j]·Σ_{i∈j} q_i·x_i`, `msum = Σ_j m[j]·(bsums[2j] + bsums[2j+1])`
//!   (exact i32), then `acc = fma(isum, d_w·d_x, acc)`, `acc = fma(−msum, dmin_w·d_x, acc)`.
//! - Q6_K: `isum = Σ_j sc[j]·Σ_{i∈j} (q_i − 32)·x_i` (exact i32), then
//!   `acc = fma(isum, d_w·d_x, acc)`.
//!
//! Integer sums are exact in any order, so the kernels form them however is fastest (the
//! SIMD paths use the activation's `bsums` for Q6_K's −32 offset, which equals the definition
//! whenever `bsums` are the sums of `qs`, as `quantize` always writes). The float steps are
//! the same operations in the same order on every path (f32 `d_w·d_x`, i32→f32 rounding to
//! nearest, fused multiply-adds), so each output depends only on its weight row and
//! activation row: not on the token count, the token's place in a tile, or the SIMD level.
//!
//! # Packed layout
//! A group of `nb` super-blocks takes the bytes of its 8 rows (`8 · nb · type_size`); packed
//! super-block `b` sits at `b · 8 · type_size` and holds block `b` of the 8 rows. Inside, a
//! *unit* is 4 consecutive bytes of one row's quant array; unit `u` of row `r` lives at
//! `32·u + 4·r` of its section, so one 32-byte load is unit `u` of all 8 rows.
//!
//! Q4_K (1152 bytes = 8 × 144):
//!
//! | offset | bytes | contents |
//! |--------|-------|----------|
//! | 0      | 16    | `d` of rows 0..8 (f16) |
//! | 16     | 16    | `dmin` of rows 0..8 (f16) |
//! | 32     | 96    | scales and mins as bit planes `A`, `B`, `H` (below) |
//! | 128    | 1024  | `qs`: 32 units × 8 rows (unit `u` = GGUF bytes `qs[4u..4u+4]`) |
//!
//! The 6-bit scales are wanted as `S[8j + r]` (sub-block `j`, row `r`: 8 bytes per sub-block,
//! one `cvtepu8_epi32` each) and the mins as `M[16i + 2r + k]` = min `2i + k` of row `r` (i16
//! pairs per row lane for `madd`). For `p < 32`: `A[p]` holds the low 4 bits of `S[p]`
//! (low nibble) and `M[p]` (high nibble), `B[p]` the same for `S[32 + p]` and `M[32 + p]`,
//! and `H[p]` their top 2 bits: bits 0–1 `S[p]`, 2–3 `M[p]`, 4–5 `S[32 + p]`, 6–7
//! `M[32 + p]`. Three loads and a dozen byte-wise ops give all 128 values; 96 bytes hold
//! what 128 plain bytes would.
//!
//! Q6_K (1680 bytes = 8 × 210):
//!
//! | offset | bytes | contents |
//! |--------|-------|----------|
//! | 0      | 128   | scales (i8): scale `2i + k` of row `r` at `16i + 2r + k` |
//! | 128    | 1536  | quant units, 96 bytes per `(h, c)` for half `h` (0..2), `c` in 0..8: |
//! |        |       | `ql` unit `16h + c`, `ql` unit `16h + 8 + c`, `qh` unit `8h + c` (× 8 rows each) |
//! | 1664   | 16    | `d` of rows 0..8 (f16) |
//!
//! (`ql` unit `u` = GGUF bytes `ql[4u..4u+4]`, `qh` unit `u` = `qh[4u..4u+4]`.) The kernels
//! read a block front to back: scales, then each `(h, c)`'s three units, which give the codes
//! of all four quarters of that half, then `d`.
//!
//! Q6_K's scale pairs sign-extend (`cvtepi8_epi16`) into `(s[2i], s[2i + 1])` i16 pairs per
//! row lane, which one byte shuffle turns into `(s[j], s[j])` for `madd`, and two shifts into
//! i32 scales for `mullo`.
//!
//! Nibbles and bit pairs stay where GGUF puts them inside each byte (see `dequantize` in
//! `crate::formats::kquants`), so a 32-byte load of Q4_K `qs` gives, for all rows, 4 elements of
//! sub-block `2p` (low nibbles) and the matching 4 of sub-block `2p + 1` (high nibbles).

// The kernels index several parallel per-token arrays of constant size at once; index ranges
// say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use half::f16;
use hearth_gguf::GgmlType;

/// Rows per packed group.
pub(crate) const ROWS: usize = super::GROUP;

// GGUF block sizes, and the Q8_K block: `d` f32, `qs` 256 × i8 at 4, `bsums` 16 × i16 at 260.
use crate::formats::kquants::{Q4K, Q6K, Q8K, Q8K_BSUMS, Q8K_QS};

/// Packed Q4_K block sections (see the module docs).
pub(crate) const Q4_BLOCK: usize = ROWS * Q4K;
pub(crate) const Q4_D: usize = 0;
pub(crate) const Q4_DMIN: usize = 16;
pub(crate) const Q4_PLANE_A: usize = 32;
pub(crate) const Q4_PLANE_B: usize = 64;
pub(crate) const Q4_PLANE_H: usize = 96;
pub(crate) const Q4_QS: usize = 128;

/// Packed Q6_K block sections.
pub(crate) const Q6_BLOCK: usize = ROWS * Q6K;
pub(crate) const Q6_SC: usize = 0;
pub(crate) const Q6_CODES: usize = 128;
pub(crate) const Q6_D: usize = 1664;

/// Where byte 0 of row `r`'s GGUF `ql` unit `u` (bytes `4u..4u + 4`) sits in a packed Q6_K
/// block: units are stored in the order the kernels read them, `ql` of quarters 0/1 and `qh`
/// of unit `c` of half `h` side by side (96 bytes per `(h, c)`).
fn q6_ql_at(u: usize, r: usize) -> usize {
    let (h, v) = (u / 16, u % 16);
    Q6_CODES + 96 * (8 * h + v % 8) + 32 * (v / 8) + 4 * r
}

/// The same for `qh` unit `u`.
fn q6_qh_at(u: usize, r: usize) -> usize {
    Q6_CODES + 96 * u + 64 + 4 * r
}

/// Q4_K and Q6_K.
pub(crate) fn supports(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K)
}

/// Bytes of one packed super-block (8 rows' block `b`).
fn packed_block(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_K => Q4_BLOCK,
        GgmlType::Q6_K => Q6_BLOCK,
        other => panic!("packed K-quants: {other} is not Q4_K or Q6_K"),
    }
}

/// `src`: 8 original rows of `nb` blocks (row-major, `8 * nb * ty.type_size()` bytes);
/// `dst`: the packed group, same length.
///
/// # Panics
/// If `ty` is not [supported](supports) or a buffer has the wrong length.
pub(crate) fn pack_group(ty: GgmlType, nb: usize, src: &[u8], dst: &mut [u8]) {
    let (bs, pb) = (ty.type_size(), packed_block(ty));
    assert_eq!(
        src.len(),
        nb * pb,
        "pack_group: {ty} source for {nb} blocks"
    );
    assert_eq!(
        dst.len(),
        nb * pb,
        "pack_group: {ty} destination for {nb} blocks"
    );
    let row_bytes = nb * bs;
    for (b, out) in dst.chunks_exact_mut(pb).enumerate() {
        let block = |r: usize| &src[r * row_bytes + b * bs..r * row_bytes + (b + 1) * bs];
        let rows: [&[u8]; ROWS] = std::array::from_fn(block);
        match ty {
            GgmlType::Q4_K => pack_q4k(&rows, out),
            _ => pack_q6k(&rows, out),
        }
    }
}

/// Writes row `r` (0..8) of a packed group back in its original GGUF bytes into `dst`
/// (`nb * ty.type_size()` bytes). Exact inverse of [`pack_group`].
///
/// # Panics
/// If `ty` is not [supported](supports), `r >= 8` or a buffer has the wrong length.
pub(crate) fn unpack_row(ty: GgmlType, nb: usize, group: &[u8], r: usize, dst: &mut [u8]) {
    let (bs, pb) = (ty.type_size(), packed_block(ty));
    assert!(r < ROWS, "unpack_row: row {r} of a group of {ROWS}");
    assert_eq!(
        group.len(),
        nb * pb,
        "unpack_row: {ty} group of {nb} blocks"
    );
    assert_eq!(dst.len(), nb * bs, "unpack_row: {ty} row of {nb} blocks");
    for (block, out) in group.chunks_exact(pb).zip(dst.chunks_exact_mut(bs)) {
        unpack_block(ty, block, r, out);
    }
}

/// Row `r`'s GGUF block out of one packed super-block.
fn unpack_block(ty: GgmlType, block: &[u8], r: usize, out: &mut [u8]) {
    match ty {
        GgmlType::Q4_K => unpack_q4k(block, r, out),
        _ => unpack_q6k(block, r, out),
    }
}

/// The 8 six-bit scales and mins of a GGUF Q4_K block from their 12 bytes (ggml's
/// `get_scale_min_k4`): bytes 0..4 / 4..8 hold scales / mins 0..4 and the top 2 bits of
/// 4..8; bytes 8..12 the low nibbles of scales (low) and mins (high) 4..8.
fn k4_decode(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 15) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, mn)
}

/// Inverse of [`k4_decode`] (a bijection: 16 six-bit values in 96 bits).
fn k4_encode(sc: &[u8; 8], mn: &[u8; 8], s: &mut [u8]) {
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
}

/// Where scale `j` of row `r` sits in the unpacked scale array `S`.
fn q4_s_index(j: usize, r: usize) -> usize {
    8 * j + r
}

/// Where min `j` of row `r` sits in the unpacked min array `M` (i16 pairs per row).
fn q4_m_index(j: usize, r: usize) -> usize {
    16 * (j / 2) + 2 * r + j % 2
}

fn pack_q4k(rows: &[&[u8]; ROWS], out: &mut [u8]) {
    let (mut s, mut m) = ([0u8; 64], [0u8; 64]);
    for (r, o) in rows.iter().enumerate() {
        out[Q4_D + 2 * r..Q4_D + 2 * r + 2].copy_from_slice(&o[0..2]);
        out[Q4_DMIN + 2 * r..Q4_DMIN + 2 * r + 2].copy_from_slice(&o[2..4]);
        let (sc, mn) = k4_decode(&o[4..16]);
        for j in 0..8 {
            s[q4_s_index(j, r)] = sc[j];
            m[q4_m_index(j, r)] = mn[j];
        }
        for u in 0..32 {
            let at = Q4_QS + 32 * u + 4 * r;
            out[at..at + 4].copy_from_slice(&o[16 + 4 * u..20 + 4 * u]);
        }
    }
    for p in 0..32 {
        out[Q4_PLANE_A + p] = (s[p] & 15) | ((m[p] & 15) << 4);
        out[Q4_PLANE_B + p] = (s[32 + p] & 15) | ((m[32 + p] & 15) << 4);
        out[Q4_PLANE_H + p] =
            (s[p] >> 4) | ((m[p] >> 4) << 2) | ((s[32 + p] >> 4) << 4) | ((m[32 + p] >> 4) << 6);
    }
}

/// `S[idx]` from the planes.
fn q4_plane_scale(block: &[u8], idx: usize) -> u8 {
    let (p, h) = (idx % 32, block[Q4_PLANE_H + idx % 32]);
    if idx < 32 {
        (block[Q4_PLANE_A + p] & 15) | ((h & 3) << 4)
    } else {
        (block[Q4_PLANE_B + p] & 15) | (((h >> 4) & 3) << 4)
    }
}

/// `M[idx]` from the planes.
fn q4_plane_min(block: &[u8], idx: usize) -> u8 {
    let (p, h) = (idx % 32, block[Q4_PLANE_H + idx % 32]);
    if idx < 32 {
        (block[Q4_PLANE_A + p] >> 4) | (((h >> 2) & 3) << 4)
    } else {
        (block[Q4_PLANE_B + p] >> 4) | ((h >> 6) << 4)
    }
}

fn unpack_q4k(block: &[u8], r: usize, o: &mut [u8]) {
    o[0..2].copy_from_slice(&block[Q4_D + 2 * r..Q4_D + 2 * r + 2]);
    o[2..4].copy_from_slice(&block[Q4_DMIN + 2 * r..Q4_DMIN + 2 * r + 2]);
    let sc: [u8; 8] = std::array::from_fn(|j| q4_plane_scale(block, q4_s_index(j, r)));
    let mn: [u8; 8] = std::array::from_fn(|j| q4_plane_min(block, q4_m_index(j, r)));
    k4_encode(&sc, &mn, &mut o[4..16]);
    for u in 0..32 {
        let at = Q4_QS + 32 * u + 4 * r;
        o[16 + 4 * u..20 + 4 * u].copy_from_slice(&block[at..at + 4]);
    }
}

/// Where scale `j` of row `r` sits in the packed Q6_K scales: `(s[2i], s[2i + 1])` pairs
/// per row, 16 bytes per pair of sub-blocks.
fn q6_sc_index(j: usize, r: usize) -> usize {
    16 * (j / 2) + 2 * r + j % 2
}

fn pack_q6k(rows: &[&[u8]; ROWS], out: &mut [u8]) {
    for (r, o) in rows.iter().enumerate() {
        for u in 0..32 {
            let at = q6_ql_at(u, r);
            out[at..at + 4].copy_from_slice(&o[4 * u..4 * u + 4]);
        }
        for u in 0..16 {
            let at = q6_qh_at(u, r);
            out[at..at + 4].copy_from_slice(&o[128 + 4 * u..132 + 4 * u]);
        }
        for j in 0..16 {
            out[Q6_SC + q6_sc_index(j, r)] = o[192 + j];
        }
        out[Q6_D + 2 * r..Q6_D + 2 * r + 2].copy_from_slice(&o[208..210]);
    }
}

fn unpack_q6k(block: &[u8], r: usize, o: &mut [u8]) {
    for u in 0..32 {
        let at = q6_ql_at(u, r);
        o[4 * u..4 * u + 4].copy_from_slice(&block[at..at + 4]);
    }
    for u in 0..16 {
        let at = q6_qh_at(u, r);
        o[128 + 4 * u..132 + 4 * u].copy_from_slice(&block[at..at + 4]);
    }
    for j in 0..16 {
        o[192 + j] = block[Q6_SC + q6_sc_index(j, r)];
    }
    o[208..210].copy_from_slice(&block[Q6_D + 2 * r..Q6_D + 2 * r + 2]);
}

fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// The scalar reference: the 8 rows of one packed group against one Q8_K activation row `x`
/// (`nb * 292` bytes), per the module's definitions. Portable Rust, no SIMD.
///
/// # Panics
/// If `ty` is not [supported](supports) or a buffer has the wrong length.
pub(crate) fn dot_ref(ty: GgmlType, nb: usize, group: &[u8], x: &[u8]) -> [f32; 8] {
    let pb = packed_block(ty);
    assert_eq!(group.len(), nb * pb, "dot_ref: {ty} group of {nb} blocks");
    assert_eq!(x.len(), nb * Q8K, "dot_ref: Q8_K row of {nb} blocks");
    let mut out = [0f32; ROWS];
    // Blocks outer, rows inner: each row still takes its blocks in order.
    for (block, xb) in group.chunks_exact(pb).zip(x.chunks_exact(Q8K)) {
        let dx = q8_d(xb);
        for (r, acc) in out.iter_mut().enumerate() {
            *acc = match ty {
                GgmlType::Q4_K => {
                    let (isum, msum) = q4k_packed_sums(block, r, xb);
                    let dw = f16_at(block, Q4_D + 2 * r);
                    let dminw = f16_at(block, Q4_DMIN + 2 * r);
                    let acc = (isum as f32).mul_add(dw * dx, *acc);
                    (-(msum as f32)).mul_add(dminw * dx, acc)
                }
                _ => {
                    let dw = f16_at(block, Q6_D + 2 * r);
                    (q6k_packed_sum(block, r, xb) as f32).mul_add(dw * dx, *acc)
                }
            };
        }
    }
    out
}

/// Activation quant `i` of a Q8_K block.
fn q8(xb: &[u8], i: usize) -> i32 {
    xb[Q8K_QS + i] as i8 as i32
}

/// `bsums[g]` of a Q8_K block.
fn bsum(xb: &[u8], g: usize) -> i32 {
    let at = Q8K_BSUMS + 2 * g;
    i16::from_le_bytes([xb[at], xb[at + 1]]) as i32
}

/// The Q8_K block's `d`.
fn q8_d(xb: &[u8]) -> f32 {
    f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]])
}

/// Q4_K's exact `(isum, msum)` for row `r` of a packed block against one Q8_K block.
/// Sub-block `j`'s element `4u + i` is nibble `j % 2` of byte `i` of `qs` unit
/// `8·(j / 2) + u` (GGUF's `qs[32·(j / 2) + 4u + i]`).
fn q4k_packed_sums(block: &[u8], r: usize, xb: &[u8]) -> (i32, i32) {
    let (mut isum, mut msum) = (0i32, 0i32);
    for j in 0..8 {
        let shift = 4 * (j % 2);
        let mut s = 0i32;
        for u in 0..8 {
            let at = Q4_QS + 32 * (8 * (j / 2) + u) + 4 * r;
            for i in 0..4 {
                let q = (block[at + i] >> shift) & 15;
                s += q as i32 * q8(xb, 32 * j + 4 * u + i);
            }
        }
        let sc = q4_plane_scale(block, q4_s_index(j, r)) as i32;
        let mn = q4_plane_min(block, q4_m_index(j, r)) as i32;
        isum += sc * s;
        msum += mn * (bsum(xb, 2 * j) + bsum(xb, 2 * j + 1));
    }
    (isum, msum)
}

/// Q6_K's exact `isum` for row `r` of a packed block against one Q8_K block. Element
/// `128h + 32t + 4c + i` takes nibble `t / 2` of byte `i` of `ql` unit `16h + 8·(t % 2) + c`
/// and bit pair `t` of byte `i` of `qh` unit `8h + c` (GGUF's `ql[64h + 32·(t % 2) + 4c + i]`
/// and `qh[32h + 4c + i]`); its code minus 32 is the value, its sub-block `8h + 2t + c / 4`.
fn q6k_packed_sum(block: &[u8], r: usize, xb: &[u8]) -> i32 {
    let mut sums = [0i32; 16];
    for h in 0..2 {
        for c in 0..8 {
            let qh = q6_qh_at(8 * h + c, r);
            for t in 0..4 {
                let ql = q6_ql_at(16 * h + 8 * (t % 2) + c, r);
                let mut s = 0i32;
                for i in 0..4 {
                    let low = (block[ql + i] >> (4 * (t / 2))) & 15;
                    let high = (block[qh + i] >> (2 * t)) & 3;
                    s += ((low | (high << 4)) as i32 - 32) * q8(xb, 128 * h + 32 * t + 4 * c + i);
                }
                sums[8 * h + 2 * t + c / 4] += s;
            }
        }
    }
    let mut isum = 0i32;
    for (j, s) in sums.iter().enumerate() {
        isum += block[Q6_SC + q6_sc_index(j, r)] as i8 as i32 * s;
    }
    isum
}

#[cfg(test)]
pub(crate) mod tests_support {
    //! Weight and activation builders shared by the tests and the benchmark.
    use super::*;
    use hearth_gguf::QK_K;
    use rand::rngs::StdRng;
    use rand::Rng;

    pub(crate) const TYPES: [GgmlType; 2] = [GgmlType::Q4_K, GgmlType::Q6_K];

    /// Offsets of the f16 scales inside a GGUF block.
    pub(crate) fn f16_offsets(ty: GgmlType) -> &'static [usize] {
        match ty {
            GgmlType::Q4_K => &[0, 2],
            _ => &[208],
        }
    }

    /// A finite, normal f16 of either sign, magnitude 2⁻¹³..2⁻¹.
    pub(crate) fn normal_f16(rng: &mut StdRng) -> [u8; 2] {
        let mag = 2f32.powf(rng.gen_range(-13.0f32..-1.0));
        let v = if rng.gen_bool(0.5) { mag } else { -mag };
        let h = f16::from_f32(v);
        assert!(h.is_normal());
        h.to_le_bytes()
    }

    /// 8 rows of `nb` blocks, every byte `fill(rng)` except normal f16 scales.
    pub(crate) fn rows_with(
        ty: GgmlType,
        nb: usize,
        rng: &mut StdRng,
        mut fill: impl FnMut(usize, &mut StdRng) -> u8,
    ) -> Vec<u8> {
        let bs = ty.type_size();
        let mut w: Vec<u8> = (0..ROWS * nb * bs).map(|i| fill(i % bs, rng)).collect();
        for block in w.chunks_exact_mut(bs) {
            for &off in f16_offsets(ty) {
                block[off..off + 2].copy_from_slice(&normal_f16(rng));
            }
        }
        w
    }

    pub(crate) fn random_rows(ty: GgmlType, nb: usize, rng: &mut StdRng) -> Vec<u8> {
        rows_with(ty, nb, rng, |_, r| r.gen())
    }

    /// Extreme weight blocks: every code and scale byte set to one value (Q6_K's scales
    /// separately, so both the largest codes and ±max scales appear).
    pub(crate) fn extreme_rows(ty: GgmlType, nb: usize, rng: &mut StdRng) -> Vec<Vec<u8>> {
        match ty {
            GgmlType::Q4_K => [0xffu8, 0x00, 0xf0, 0x0f]
                .into_iter()
                .map(|v| rows_with(ty, nb, rng, |_, _| v))
                .collect(),
            _ => {
                let mut out = Vec::new();
                for q in [0xffu8, 0x00] {
                    for s in [0x7fu8, 0x80, 0xff] {
                        let fill = |i: usize, _: &mut StdRng| if i >= 192 { s } else { q };
                        out.push(rows_with(ty, nb, rng, fill));
                    }
                }
                out
            }
        }
    }

    /// `tokens` Q8_K rows of random activations, quantized as the engine does.
    pub(crate) fn random_x(nb: usize, tokens: usize, rng: &mut StdRng) -> Vec<u8> {
        let n = nb * QK_K;
        let x: Vec<f32> = (0..tokens * n)
            .map(|_| rng.gen_range(-3.0f32..3.0))
            .collect();
        let mut xq = vec![0u8; tokens * nb * Q8K];
        for (src, dst) in x.chunks_exact(n).zip(xq.chunks_exact_mut(nb * Q8K)) {
            crate::formats::kquants::quantize(GgmlType::Q8_K, src, dst).unwrap();
        }
        xq
    }

    /// One Q8_K row with quants `q(i)` (any i8, −128 included), consistent bsums and `d`.
    pub(crate) fn fixed_x(nb: usize, d: f32, q: impl Fn(usize) -> i8) -> Vec<u8> {
        let mut x = vec![0u8; nb * Q8K];
        for (b, xb) in x.chunks_exact_mut(Q8K).enumerate() {
            xb[0..4].copy_from_slice(&d.to_le_bytes());
            for i in 0..QK_K {
                xb[Q8K_QS + i] = q(b * QK_K + i) as u8;
            }
            for g in 0..16 {
                let s: i32 = (0..16).map(|i| q(b * QK_K + 16 * g + i) as i32).sum();
                let at = Q8K_BSUMS + 2 * g;
                xb[at..at + 2].copy_from_slice(&(s as i16).to_le_bytes());
            }
        }
        x
    }

    pub(crate) fn extreme_x(nb: usize, rng: &mut StdRng) -> Vec<u8> {
        let d = rng.gen_range(0.001f32..0.1);
        let mut x = fixed_x(nb, d, |_| 127);
        x.extend(fixed_x(nb, d, |_| -128));
        x.extend(fixed_x(nb, d, |_| -127));
        x.extend(fixed_x(nb, d, |i| if i % 2 == 0 { 127 } else { -128 }));
        x.extend(fixed_x(
            nb,
            d,
            |i| if (i / 4) % 2 == 0 { -128 } else { 127 },
        ));
        x
    }

    /// Q4_K's exact `(isum, msum)` for one block pair, in GGUF's element order.
    pub(crate) fn q4k_sums(w: &[u8], xb: &[u8]) -> (i32, i32) {
        let (sc, mn) = k4_decode(&w[4..16]);
        let qs = &w[16..144];
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..8 {
            let mut s = 0i32;
            for e in 32 * j..32 * j + 32 {
                let q = (qs[32 * (e / 64) + e % 32] >> (4 * (j % 2))) & 15;
                s += q as i32 * q8(xb, e);
            }
            isum += sc[j] as i32 * s;
            msum += mn[j] as i32 * (bsum(xb, 2 * j) + bsum(xb, 2 * j + 1));
        }
        (isum, msum)
    }

    /// Q6_K's exact `isum` for one block pair: codes 0..63 minus 32, in GGUF's element order.
    pub(crate) fn q6k_sum(w: &[u8], xb: &[u8]) -> i32 {
        let (ql, qh, scales) = (&w[0..128], &w[128..192], &w[192..208]);
        let mut isum = 0i32;
        for j in 0..16 {
            let mut s = 0i32;
            for e in 16 * j..16 * j + 16 {
                let (half, t, l) = (e / 128, (e / 32) % 4, e % 32);
                let low = (ql[64 * half + 32 * (t % 2) + l] >> (4 * (t / 2))) & 15;
                let high = (qh[32 * half + l] >> (2 * t)) & 3;
                s += ((low | (high << 4)) as i32 - 32) * q8(xb, e);
            }
            isum += scales[j] as i8 as i32 * s;
        }
        isum
    }

    /// The contract computed on GGUF rows (unpacked from the group) instead of packed
    /// bytes: the same float steps on the sums of [`q4k_sums`] / [`q6k_sum`].
    pub(crate) fn gguf_ref(ty: GgmlType, group: &[u8], x: &[u8]) -> [f32; 8] {
        let (bs, pb) = (ty.type_size(), packed_block(ty));
        let mut out = [0f32; ROWS];
        let mut w = [0u8; Q6K];
        for (r, acc) in out.iter_mut().enumerate() {
            for (block, xb) in group.chunks_exact(pb).zip(x.chunks_exact(Q8K)) {
                unpack_block(ty, block, r, &mut w[..bs]);
                let dx = q8_d(xb);
                *acc = match ty {
                    GgmlType::Q4_K => {
                        let (isum, msum) = q4k_sums(&w, xb);
                        let acc = (isum as f32).mul_add(f16_at(&w, 0) * dx, *acc);
                        (-(msum as f32)).mul_add(f16_at(&w, 2) * dx, acc)
                    }
                    _ => (q6k_sum(&w, xb) as f32).mul_add(f16_at(&w, 208) * dx, *acc),
                };
            }
        }
        out
    }

    /// `groups` packed groups of the row-major `rows` (8 · groups rows).
    pub(crate) fn pack_all(ty: GgmlType, nb: usize, rows: &[u8]) -> Vec<u8> {
        let gb = ROWS * nb * ty.type_size();
        let mut packed = vec![0u8; rows.len()];
        for (src, dst) in rows.chunks_exact(gb).zip(packed.chunks_exact_mut(gb)) {
            pack_group(ty, nb, src, dst);
        }
        packed
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use hearth_gguf::QK_K;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn pack_then_unpack_gives_the_original_rows() {
        let mut rng = StdRng::seed_from_u64(7);
        for ty in TYPES {
            let bs = ty.type_size();
            for nb in [1, 2, 3, 14] {
                let mut cases: Vec<Vec<u8>> = (0..4)
                    .map(|_| (0..ROWS * nb * bs).map(|_| rng.gen()).collect())
                    .collect();
                for v in [0x00u8, 0xff, 0x55, 0xaa] {
                    cases.push(vec![v; ROWS * nb * bs]);
                }
                for rows in cases {
                    let packed = pack_all(ty, nb, &rows);
                    let mut row = vec![0u8; nb * bs];
                    for r in 0..ROWS {
                        unpack_row(ty, nb, &packed, r, &mut row);
                        assert!(
                            row == rows[r * nb * bs..(r + 1) * nb * bs],
                            "{ty} nb={nb} r={r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn packed_layout_interleaves_units_of_four_bytes() {
        // Spot-check where GGUF quant units land: Q4_K `qs` unit u of row r at 128 + 32u + 4r;
        // Q6_K's `ql` / `qh` units where `q6_ql_at` / `q6_qh_at` say, 32-byte aligned runs of
        // the 8 rows.
        let mut rng = StdRng::seed_from_u64(8);
        for ty in TYPES {
            let rows = random_rows(ty, 1, &mut rng);
            let packed = pack_all(ty, 1, &rows);
            let bs = ty.type_size();
            let checks: Vec<(usize, usize)> = match ty {
                GgmlType::Q4_K => (0..32).map(|u| (16 + 4 * u, Q4_QS + 32 * u)).collect(),
                _ => {
                    let ql = (0..32).map(|u| (4 * u, q6_ql_at(u, 0)));
                    ql.chain((0..16).map(|u| (128 + 4 * u, q6_qh_at(u, 0))))
                        .collect()
                }
            };
            let mut seen = vec![false; packed.len()];
            for (src, dst) in checks {
                for r in 0..ROWS {
                    let want = &rows[r * bs + src..r * bs + src + 4];
                    let at = dst + 4 * r;
                    assert_eq!(want, &packed[at..at + 4], "{ty} byte {src} of row {r}");
                    assert!(!seen[at], "{ty}: two units at {at}");
                    seen[at] = true;
                }
            }
        }
    }

    /// `dot_ref` against a float64 dot product of the dequantized rows and activations.
    fn check_ref_against_f64(ty: GgmlType, nb: usize, rows: &[u8], xq: &[u8]) {
        let n = nb * QK_K;
        let bs = ty.type_size();
        let packed = pack_all(ty, nb, rows);
        let mut xf = vec![0f32; n];
        let mut wf = vec![0f32; n];
        for x in xq.chunks_exact(nb * Q8K) {
            crate::formats::kquants::dequantize(GgmlType::Q8_K, x, &mut xf);
            let got = dot_ref(ty, nb, &packed, x);
            for r in 0..ROWS {
                crate::formats::kquants::dequantize(
                    ty,
                    &rows[r * nb * bs..(r + 1) * nb * bs],
                    &mut wf,
                );
                let want: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
                let mag: f64 = wf
                    .iter()
                    .zip(&xf)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                let err = (got[r] as f64 - want).abs();
                assert!(
                    err <= 1e-5 * mag + 1e-30,
                    "{ty} nb={nb} r={r}: {} vs {want} (magnitude {mag})",
                    got[r]
                );
            }
        }
    }

    #[test]
    fn reference_computes_the_dot_product() {
        let mut rng = StdRng::seed_from_u64(9);
        for ty in TYPES {
            for nb in [1, 2, 3, 14] {
                for _ in 0..3 {
                    let rows = random_rows(ty, nb, &mut rng);
                    check_ref_against_f64(ty, nb, &rows, &random_x(nb, 2, &mut rng));
                }
                for rows in extreme_rows(ty, nb, &mut rng) {
                    check_ref_against_f64(ty, nb, &rows, &extreme_x(nb, &mut rng));
                }
            }
        }
    }

    #[test]
    fn reference_reads_the_packed_bytes_as_gguf_rows() {
        // `dot_ref` reads the packed layout directly; the same contract on the unpacked GGUF
        // rows must give the same bits.
        let mut rng = StdRng::seed_from_u64(14);
        for ty in TYPES {
            for nb in [1, 3, 14] {
                let mut cases = vec![random_rows(ty, nb, &mut rng)];
                cases.extend(extreme_rows(ty, nb, &mut rng));
                for rows in cases {
                    let packed = pack_all(ty, nb, &rows);
                    let mut xq = random_x(nb, 2, &mut rng);
                    xq.extend(extreme_x(nb, &mut rng));
                    for x in xq.chunks_exact(nb * Q8K) {
                        let (a, b) = (dot_ref(ty, nb, &packed, x), gguf_ref(ty, &packed, x));
                        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "{ty} nb={nb}");
                    }
                }
            }
        }
    }

    /// The reference with its float steps reordered (Q4_K: the min term first; Q6_K: the
    /// product `(isum · d_w) · d_x` instead of `isum · (d_w · d_x)`), as a kernel with a
    /// wrong operation order would compute.
    fn reordered_ref(ty: GgmlType, group: &[u8], x: &[u8]) -> [f32; 8] {
        let (bs, pb) = (ty.type_size(), packed_block(ty));
        let mut out = [0f32; ROWS];
        let mut w = [0u8; Q6K];
        for (r, acc) in out.iter_mut().enumerate() {
            for (block, xb) in group.chunks_exact(pb).zip(x.chunks_exact(Q8K)) {
                unpack_block(ty, block, r, &mut w[..bs]);
                let dx = q8_d(xb);
                *acc = match ty {
                    GgmlType::Q4_K => {
                        let (isum, msum) = q4k_sums(&w, xb);
                        let acc = (-(msum as f32)).mul_add(f16_at(&w, 2) * dx, *acc);
                        (isum as f32).mul_add(f16_at(&w, 0) * dx, acc)
                    }
                    _ => (q6k_sum(&w, xb) as f32 * f16_at(&w, 208)).mul_add(dx, *acc),
                };
            }
        }
        out
    }

    #[test]
    fn a_changed_operation_order_changes_bits() {
        // The kernel tests compare bits; this shows that a kernel doing the same arithmetic in
        // another order would fail them: the reordered reference agrees closely with
        // `dot_ref` but not bit for bit.
        let (mut rng, nb) = (StdRng::seed_from_u64(13), 14);
        for ty in TYPES {
            let packed = pack_all(ty, nb, &random_rows(ty, nb, &mut rng));
            let xq = random_x(nb, 8, &mut rng);
            let mut differ = 0;
            for x in xq.chunks_exact(nb * Q8K) {
                let (a, b) = (dot_ref(ty, nb, &packed, x), reordered_ref(ty, &packed, x));
                for r in 0..ROWS {
                    assert!((a[r] - b[r]).abs() <= 1e-3 * a[r].abs().max(1e-3), "{ty}");
                    differ += usize::from(a[r].to_bits() != b[r].to_bits());
                }
            }
            assert!(differ > 0, "{ty}: reordering changed no output's bits");
        }
    }
}
