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

#[cfg(target_arch = "x86_64")]
use crate::types::Tile;
use crate::GgmlType;
use half::f16;

/// Rows per packed group.
const ROWS: usize = super::GROUP;

// GGUF block sizes, and the Q8_K block: `d` f32, `qs` 256 × i8 at 4, `bsums` 16 × i16 at 260.
use crate::formats::kquants::{Q4K, Q6K, Q8K, Q8K_BSUMS, Q8K_QS};

/// Packed Q4_K block sections (see the module docs).
const Q4_BLOCK: usize = ROWS * Q4K;
const Q4_D: usize = 0;
const Q4_DMIN: usize = 16;
const Q4_PLANE_A: usize = 32;
const Q4_PLANE_B: usize = 64;
const Q4_PLANE_H: usize = 96;
const Q4_QS: usize = 128;

/// Packed Q6_K block sections.
const Q6_BLOCK: usize = ROWS * Q6K;
const Q6_SC: usize = 0;
const Q6_CODES: usize = 128;
const Q6_D: usize = 1664;

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
pub(super) fn supports(ty: GgmlType) -> bool {
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
pub(super) fn pack_group(ty: GgmlType, nb: usize, src: &[u8], dst: &mut [u8]) {
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
pub(super) fn unpack_row(ty: GgmlType, nb: usize, group: &[u8], r: usize, dst: &mut [u8]) {
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
pub(super) fn dot_ref(ty: GgmlType, nb: usize, group: &[u8], x: &[u8]) -> [f32; 8] {
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

#[cfg(target_arch = "x86_64")]
pub(super) use simd::{tile_avx2, tile_vnni};

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The AVX2 and AVX-512 VNNI kernels. Each is generic over `T`, the tokens of one pass:
    //! a packed block's quants and scales are loaded and unpacked once per pass, and every
    //! token keeps its own i32 sums and f32 accumulator (8 rows in one vector).
    //!
    //! Integer sums, per level:
    //! - AVX2: `maddubs` (unsigned quant × signed activation, pairs added into i16) then
    //!   `add_epi16` over the chunks of a sub-block, then `madd` with the sub-block scale
    //!   duplicated as an i16 pair. Bounds: a Q4_K pair is at most 2·15·128 = 3840 and eight
    //!   chunks 30720; a Q6_K pair 2·63·128 = 16128, so Q6_K adds only two chunks (32256)
    //!   before each `madd`. Nothing saturates. Q6_K's offset, −32·Σ_j s[j]·bsums[j], is
    //!   one `madd` per pair of sub-blocks (scale pairs against broadcast bsums pairs).
    //! - VNNI: `vpdpbusd` (four products into the i32 lane) per chunk, then `mullo` by the
    //!   sub-block scale. Q4_K's high nibbles are used in place (`q & 0xf0`, i.e. 16·q), with
    //!   the low-nibble sub-blocks' scales multiplied by 16 to match; the block sum is then
    //!   16·isum (|·| ≤ 16·8·63·32·15·128 < 2³¹) and an arithmetic shift by 4 is exact.
    //!   Q6_K's sub-block sums start at −32·bsums[j] instead of 0.
    //!
    //! Then per block and token: `d_w·d_x` as one f32 multiply (eight rows' `d_w` by the
    //! broadcast `d_x`), `cvtepi32_ps`, and `fmadd` / `fnmadd`: [`super::dot_ref`]'s
    //! operations in its order.

    use super::*;
    use std::arch::x86_64::*;

    /// The 8 outputs of every group `g < groups` against every token `k < tokens` (module
    /// docs of the parent): group `g`'s packed bytes at `t.w + g * t.wrb`, token `k`'s
    /// Q8_K row at `t.x + k * t.xrb`, outputs at `t.out + k * t.ostride + 8 * g + (0..8)`.
    /// Each output equals [`dot_ref`] bit for bit. Tokens run 4 per pass (tails as 2, 1);
    /// each pass walks every group, so its activations stay in L1 while the groups (which
    /// the caller sizes for L2) stream past.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `ty` is [supported](supports); each group holds
    /// `nb` packed blocks, each token row `nb` Q8_K blocks, and the outputs are writable
    /// and not read or written by anyone else during the call.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in crate::packed) unsafe fn tile_avx2(
        ty: GgmlType,
        nb: usize,
        t: &Tile,
        groups: usize,
        tokens: usize,
    ) {
        let mut k = 0;
        while k < tokens {
            let n = pass_width(tokens - k, 4);
            for g in 0..groups {
                let p = Pass::new(nb, t, g, k);
                match (ty, n) {
                    (GgmlType::Q4_K, 4) => q4k_avx2::<4>(&p),
                    (GgmlType::Q4_K, 2) => q4k_avx2::<2>(&p),
                    (GgmlType::Q4_K, _) => q4k_avx2::<1>(&p),
                    (_, 4) => q6k_avx2::<4>(&p),
                    (_, 2) => q6k_avx2::<2>(&p),
                    _ => q6k_avx2::<1>(&p),
                }
            }
            k += n;
        }
    }

    /// [`tile_avx2`] with AVX-512 VNNI (`vpdpbusd`, `vpdpwssd` on ymm): Q4_K 8 tokens per
    /// pass, Q6_K 4 (its four quarters' sums per token fill the registers sooner; measured
    /// faster than 8), tails as 4, 2, 1; bit-identical outputs.
    ///
    /// # Safety
    /// As [`tile_avx2`], and the CPU also has AVX-512 VNNI, VL and BW.
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
    pub(in crate::packed) unsafe fn tile_vnni(
        ty: GgmlType,
        nb: usize,
        t: &Tile,
        groups: usize,
        tokens: usize,
    ) {
        let widest = if ty == GgmlType::Q4_K { 8 } else { 4 };
        let mut k = 0;
        while k < tokens {
            let n = pass_width(tokens - k, widest);
            for g in 0..groups {
                let p = Pass::new(nb, t, g, k);
                match (ty, n) {
                    (GgmlType::Q4_K, 8) => q4k_vnni::<8>(&p),
                    (GgmlType::Q4_K, 4) => q4k_vnni::<4>(&p),
                    (GgmlType::Q4_K, 2) => q4k_vnni::<2>(&p),
                    (GgmlType::Q4_K, _) => q4k_vnni::<1>(&p),
                    (_, 4) => q6k_vnni::<4>(&p),
                    (_, 2) => q6k_vnni::<2>(&p),
                    _ => q6k_vnni::<1>(&p),
                }
            }
            k += n;
        }
    }

    /// Tokens in the next pass: the largest power of two up to `widest` and `left`.
    #[inline(always)]
    fn pass_width(left: usize, widest: usize) -> usize {
        let mut n = widest;
        while n > left {
            n /= 2;
        }
        n
    }

    /// One pass: one packed group (`nb` blocks at `w`) against `T` consecutive tokens (at
    /// `x`, `xrb` apart), outputs at `out + k * ostride + (0..8)`.
    struct Pass {
        nb: usize,
        w: *const u8,
        x: *const u8,
        xrb: usize,
        out: *mut f32,
        ostride: usize,
    }

    impl Pass {
        /// Group `g` of `t` against the tokens from `k` on (pointer arithmetic only).
        #[inline(always)]
        fn new(nb: usize, t: &Tile, g: usize, k: usize) -> Pass {
            Pass {
                nb,
                w: t.w.wrapping_add(g * t.wrb),
                x: t.x.wrapping_add(k * t.xrb),
                xrb: t.xrb,
                out: t.out.wrapping_add(k * t.ostride + ROWS * g),
                ostride: t.ostride,
            }
        }

        /// Q8_K block `b` of token `k`.
        #[inline(always)]
        fn xb(&self, k: usize, b: usize) -> *const u8 {
            self.x.wrapping_add(k * self.xrb + b * Q8K)
        }
    }

    // Helpers are `inline(always)` without `target_feature`: inlined into the kernels, their
    // intrinsics compile with the kernels' features. (No closures in the kernels: those are
    // not inlined with the features.)
    //
    // Safety of the helpers: each is `unsafe` because it runs intrinsics, which need the
    // calling kernel's features (every caller is one of the `#[target_feature]` kernels
    // below), and, where it takes a pointer, because it reads the bytes its doc names at that
    // pointer: a packed block or a Q8_K block inside the ranges the kernel's own safety
    // contract covers.

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p as *const __m256i)
    }

    /// The 4 bytes at `p` in every i32 lane (one broadcast load).
    #[inline(always)]
    unsafe fn bcast4(p: *const u8) -> __m256i {
        _mm256_set1_epi32((p as *const i32).read_unaligned())
    }

    /// 8 f16 at `p` as f32 (exact, like `half`'s conversion).
    #[inline(always)]
    unsafe fn f16x8(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    /// The Q8_K block's `d` in every lane.
    #[inline(always)]
    unsafe fn dx(xb: *const u8) -> __m256 {
        _mm256_set1_ps((xb as *const f32).read_unaligned())
    }

    /// i32 lanes holding values in i16 range, as the i16 pair `(v, v)` for `madd`.
    #[inline(always)]
    unsafe fn dup16(v: __m256i) -> __m256i {
        let low = _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
        _mm256_or_si256(low, _mm256_slli_epi32(v, 16))
    }

    /// The first `f32` step of a block for one token, 8 rows: `acc = fma(isum, d_w·d_x, acc)`
    /// (`dd` = `d_w·d_x`, one f32 multiply per lane, as in the reference).
    #[inline(always)]
    unsafe fn scale_add(acc: __m256, isum: __m256i, dd: __m256) -> __m256 {
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dd, acc)
    }

    /// Q4_K's second step: `acc = fma(−msum, dmin_w·d_x, acc)`; `fnmadd` computes
    /// `−(a·b) + c` with one rounding, which is `fma(−a, b, c)` exactly.
    #[inline(always)]
    unsafe fn min_sub(acc: __m256, msum: __m256i, dd: __m256) -> __m256 {
        _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), dd, acc)
    }

    /// Q4_K's scales and mins from the planes of the packed block at `wb` (module docs): the
    /// scales of sub-block `j` as i32 lanes (one per row), and the mins `(m[2i], m[2i + 1])`
    /// as i16 pairs per row lane, for `madd` against bsums pairs.
    #[inline(always)]
    unsafe fn q4k_scales_mins(wb: *const u8) -> ([__m256i; 8], [__m256i; 4]) {
        let m4 = _mm256_set1_epi8(0x0f);
        let m30 = _mm256_set1_epi8(0x30);
        let a = load(wb.add(Q4_PLANE_A));
        let b = load(wb.add(Q4_PLANE_B));
        let h = load(wb.add(Q4_PLANE_H));
        // 16-bit shifts move bits across bytes; each result is masked to its byte's bits.
        let s0 = _mm256_or_si256(
            _mm256_and_si256(a, m4),
            _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(3)), 4),
        );
        let m0 = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
            _mm256_and_si256(_mm256_slli_epi16(h, 2), m30),
        );
        let s1 = _mm256_or_si256(_mm256_and_si256(b, m4), _mm256_and_si256(h, m30));
        let m1 = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
            _mm256_and_si256(_mm256_srli_epi16(h, 2), m30),
        );
        // `S` bytes 8j..8j + 8 are sub-block j's scales: quarters of s0 (j < 4) and s1.
        let s = [
            _mm256_castsi256_si128(s0),
            _mm256_extracti128_si256(s0, 1),
            _mm256_castsi256_si128(s1),
            _mm256_extracti128_si256(s1, 1),
        ];
        let mut sc = [_mm256_setzero_si256(); 8];
        for i in 0..4 {
            sc[2 * i] = _mm256_cvtepu8_epi32(s[i]);
            sc[2 * i + 1] = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(s[i], s[i]));
        }
        let mn = [
            _mm256_cvtepu8_epi16(_mm256_castsi256_si128(m0)),
            _mm256_cvtepu8_epi16(_mm256_extracti128_si256(m0, 1)),
            _mm256_cvtepu8_epi16(_mm256_castsi256_si128(m1)),
            _mm256_cvtepu8_epi16(_mm256_extracti128_si256(m1, 1)),
        ];
        (sc, mn)
    }

    /// The bsums of a Q8_K block as the i16 pairs `(B[2i], B[2i + 1])` broadcast, for
    /// `i` in 0..4, where `B[j] = bsums[2j] + bsums[2j + 1]` (|B| ≤ 4096: no overflow).
    #[inline(always)]
    unsafe fn q4k_bsum_pairs(xb: *const u8) -> [__m256i; 4] {
        let bs = load(xb.add(Q8K_BSUMS));
        // Per 128-bit half: B[0..4] (low half) / B[4..8] (high half), twice each.
        let h = _mm256_hadd_epi16(bs, bs);
        [
            _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(0)),
            _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(1)),
            _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(4)),
            _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(5)),
        ]
    }

    /// Q4_K on AVX2.
    ///
    /// # Safety
    /// As [`tile_avx2`], for the pass's group and `T` tokens.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4k_avx2<const T: usize>(p: &Pass) {
        let m4 = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..p.nb {
            let wb = p.w.add(b * Q4_BLOCK);
            let (mut sc, mn) = q4k_scales_mins(wb);
            for j in 0..8 {
                sc[j] = dup16(sc[j]);
            }
            let mut isum = [zero; T];
            for q in 0..4 {
                let (mut lo, mut hi) = ([zero; T], [zero; T]);
                for c in 0..8 {
                    let v = load(wb.add(Q4_QS + 32 * (8 * q + c)));
                    let ql = _mm256_and_si256(v, m4);
                    let qh = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    for k in 0..T {
                        let xq = p.xb(k, b).add(Q8K_QS + 64 * q + 4 * c);
                        lo[k] = _mm256_add_epi16(lo[k], _mm256_maddubs_epi16(ql, bcast4(xq)));
                        hi[k] =
                            _mm256_add_epi16(hi[k], _mm256_maddubs_epi16(qh, bcast4(xq.add(32))));
                    }
                }
                for k in 0..T {
                    let s = _mm256_add_epi32(
                        _mm256_madd_epi16(lo[k], sc[2 * q]),
                        _mm256_madd_epi16(hi[k], sc[2 * q + 1]),
                    );
                    isum[k] = _mm256_add_epi32(isum[k], s);
                }
            }
            let (dw, dminw) = (f16x8(wb.add(Q4_D)), f16x8(wb.add(Q4_DMIN)));
            for k in 0..T {
                let xb = p.xb(k, b);
                let bp = q4k_bsum_pairs(xb);
                let mut msum = _mm256_madd_epi16(mn[0], bp[0]);
                for i in 1..4 {
                    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mn[i], bp[i]));
                }
                let d = dx(xb);
                acc[k] = scale_add(acc[k], isum[k], _mm256_mul_ps(dw, d));
                acc[k] = min_sub(acc[k], msum, _mm256_mul_ps(dminw, d));
            }
        }
        for k in 0..T {
            _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
        }
    }

    /// Q4_K with VNNI. For one token the chunks alternate between two accumulators per
    /// sub-block so consecutive `vpdpbusd` do not wait on each other.
    ///
    /// # Safety
    /// As [`tile_vnni`], for the pass's group and `T` tokens.
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
    unsafe fn q4k_vnni<const T: usize>(p: &Pass) {
        let m4 = _mm256_set1_epi8(0x0f);
        let mf0 = _mm256_set1_epi8(0xf0u8 as i8);
        let zero = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..p.nb {
            let wb = p.w.add(b * Q4_BLOCK);
            let (mut sc, mn) = q4k_scales_mins(wb);
            // Even sub-blocks come from low nibbles (q), odd ones from `q & 0xf0` (16q).
            for j in (0..8).step_by(2) {
                sc[j] = _mm256_slli_epi32(sc[j], 4);
            }
            let mut isum = [zero; T];
            for q in 0..4 {
                let (mut lo, mut hi) = ([zero; T], [zero; T]);
                let (mut lo2, mut hi2) = ([zero; T], [zero; T]);
                for c in 0..8 {
                    let v = load(wb.add(Q4_QS + 32 * (8 * q + c)));
                    let (ql, qh) = (_mm256_and_si256(v, m4), _mm256_and_si256(v, mf0));
                    for k in 0..T {
                        let xq = p.xb(k, b).add(Q8K_QS + 64 * q + 4 * c);
                        let (xl, xh) = (bcast4(xq), bcast4(xq.add(32)));
                        if T == 1 && c % 2 == 1 {
                            lo2[k] = _mm256_dpbusd_epi32(lo2[k], ql, xl);
                            hi2[k] = _mm256_dpbusd_epi32(hi2[k], qh, xh);
                        } else {
                            lo[k] = _mm256_dpbusd_epi32(lo[k], ql, xl);
                            hi[k] = _mm256_dpbusd_epi32(hi[k], qh, xh);
                        }
                    }
                }
                for k in 0..T {
                    if T == 1 {
                        lo[k] = _mm256_add_epi32(lo[k], lo2[k]);
                        hi[k] = _mm256_add_epi32(hi[k], hi2[k]);
                    }
                    let s = _mm256_add_epi32(
                        _mm256_mullo_epi32(lo[k], sc[2 * q]),
                        _mm256_mullo_epi32(hi[k], sc[2 * q + 1]),
                    );
                    isum[k] = _mm256_add_epi32(isum[k], s);
                }
            }
            let (dw, dminw) = (f16x8(wb.add(Q4_D)), f16x8(wb.add(Q4_DMIN)));
            for k in 0..T {
                let xb = p.xb(k, b);
                let bp = q4k_bsum_pairs(xb);
                let mut msum = _mm256_dpwssd_epi32(zero, mn[0], bp[0]);
                msum = _mm256_dpwssd_epi32(msum, mn[1], bp[1]);
                let mut msum2 = _mm256_dpwssd_epi32(zero, mn[2], bp[2]);
                msum2 = _mm256_dpwssd_epi32(msum2, mn[3], bp[3]);
                let d = dx(xb);
                // 16·isum is exact (see the module docs), so the shift is an exact division.
                let is = _mm256_srai_epi32(isum[k], 4);
                acc[k] = scale_add(acc[k], is, _mm256_mul_ps(dw, d));
                let ms = _mm256_add_epi32(msum, msum2);
                acc[k] = min_sub(acc[k], ms, _mm256_mul_ps(dminw, d));
            }
        }
        for k in 0..T {
            _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
        }
    }

    /// Q6_K's unsigned 6-bit codes of unit `c` of half `h`, all rows, for the four quarters
    /// `t` of the half (elements `128h + 32t + 4c + 0..4`): the low (`t < 2`) or high nibbles
    /// of the `ql` unit of quarter `t % 2`, with bit pair `t` of the `qh` unit as bits 4–5
    /// (GGUF's element order, see `q6k_sum`).
    #[inline(always)]
    unsafe fn q6k_codes(wb: *const u8, h: usize, c: usize) -> [__m256i; 4] {
        let m4 = _mm256_set1_epi8(0x0f);
        let unit = wb.add(Q6_CODES + 96 * (8 * h + c));
        let (ql0, ql1, qh) = (load(unit), load(unit.add(32)), load(unit.add(64)));
        // 16-bit shifts move bits across bytes; each result is masked to its byte's bits.
        let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4);
        let h1 = _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0c)), 2);
        let h2 = _mm256_and_si256(qh, _mm256_set1_epi8(0x30));
        let h3 = _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0xc0u8 as i8)), 2);
        [
            _mm256_or_si256(_mm256_and_si256(ql0, m4), h0),
            _mm256_or_si256(_mm256_and_si256(ql1, m4), h1),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h2),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h3),
        ]
    }

    /// The packed Q6_K scales of sub-blocks `2i`, `2i + 1` as i16 pairs per row lane.
    #[inline(always)]
    unsafe fn q6k_scale_pairs(wb: *const u8, i: usize) -> __m256i {
        _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(Q6_SC + 16 * i) as *const __m128i))
    }

    /// Q6_K on AVX2. Sub-block `j = 8h + 2t + cc` covers units `4cc..4cc + 4` of quarter `t`
    /// of half `h`; each pair of units' `maddubs` is summed in i16 (at most 2·2·63·128 =
    /// 32256), then `madd` with the `(s[j], s[j])` scale pair.
    ///
    /// # Safety
    /// As [`tile_avx2`], for the pass's group and `T` tokens.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q6k_avx2<const T: usize>(p: &Pass) {
        let zero = _mm256_setzero_si256();
        // Byte shuffles (indices within each 128-bit half) that copy the first / second
        // i16 of each i32 lane over both.
        let w = |i: i32| (4 * i) | ((4 * i + 1) << 8) | ((4 * i) << 16) | ((4 * i + 1) << 24);
        let dup_lo = _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(0), w(1), w(2), w(3));
        let dup_hi = _mm256_add_epi8(dup_lo, _mm256_set1_epi8(2));
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..p.nb {
            let wb = p.w.add(b * Q6_BLOCK);
            let mut isum = [zero; T];
            let mut sc = [zero; 16];
            for i in 0..8 {
                let pair = q6k_scale_pairs(wb, i);
                sc[2 * i] = _mm256_shuffle_epi8(pair, dup_lo);
                sc[2 * i + 1] = _mm256_shuffle_epi8(pair, dup_hi);
                for k in 0..T {
                    let bs = bcast4(p.xb(k, b).add(Q8K_BSUMS + 4 * i));
                    isum[k] = _mm256_add_epi32(isum[k], _mm256_madd_epi16(pair, bs));
                }
            }
            for k in 0..T {
                // −32 · Σ_j s[j] · bsums[j]: |Σ| ≤ 16·128·2048, so ·32 fits.
                isum[k] = _mm256_sub_epi32(zero, _mm256_slli_epi32(isum[k], 5));
            }
            for h in 0..2 {
                for cc in 0..2 {
                    for half in 0..2 {
                        let mut s = [[zero; T]; 4];
                        for c in 4 * cc + 2 * half..4 * cc + 2 * half + 2 {
                            let q = q6k_codes(wb, h, c);
                            for k in 0..T {
                                let xq = p.xb(k, b).add(Q8K_QS + 128 * h + 4 * c);
                                for t in 0..4 {
                                    let m = _mm256_maddubs_epi16(q[t], bcast4(xq.add(32 * t)));
                                    s[t][k] = _mm256_add_epi16(s[t][k], m);
                                }
                            }
                        }
                        for t in 0..4 {
                            let sj = sc[8 * h + 2 * t + cc];
                            for k in 0..T {
                                let m = _mm256_madd_epi16(s[t][k], sj);
                                isum[k] = _mm256_add_epi32(isum[k], m);
                            }
                        }
                    }
                }
            }
            let dw = f16x8(wb.add(Q6_D));
            for k in 0..T {
                let d = dx(p.xb(k, b));
                acc[k] = scale_add(acc[k], isum[k], _mm256_mul_ps(dw, d));
            }
        }
        for k in 0..T {
            _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
        }
    }

    /// Q6_K with VNNI: each sub-block's `vpdpbusd` chain starts at −32·bsums[j] and is then
    /// multiplied by the sub-block's scales (`mullo`).
    ///
    /// # Safety
    /// As [`tile_vnni`], for the pass's group and `T` tokens.
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
    unsafe fn q6k_vnni<const T: usize>(p: &Pass) {
        let zero = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_ps(); T];
        let mut bias = [[0i32; 16]; T];
        for b in 0..p.nb {
            let wb = p.w.add(b * Q6_BLOCK);
            for k in 0..T {
                let bs = p.xb(k, b).add(Q8K_BSUMS);
                let lo = _mm256_cvtepi16_epi32(_mm_loadu_si128(bs as *const __m128i));
                let hi = _mm256_cvtepi16_epi32(_mm_loadu_si128(bs.add(16) as *const __m128i));
                let out = bias[k].as_mut_ptr() as *mut __m256i;
                _mm256_storeu_si256(out, _mm256_sub_epi32(zero, _mm256_slli_epi32(lo, 5)));
                _mm256_storeu_si256(out.add(1), _mm256_sub_epi32(zero, _mm256_slli_epi32(hi, 5)));
            }
            let mut sc = [zero; 16];
            for i in 0..8 {
                let pair = q6k_scale_pairs(wb, i);
                sc[2 * i] = _mm256_srai_epi32(_mm256_slli_epi32(pair, 16), 16);
                sc[2 * i + 1] = _mm256_srai_epi32(pair, 16);
            }
            let mut isum = [zero; T];
            for h in 0..2 {
                for cc in 0..2 {
                    let mut s = [[zero; T]; 4];
                    for t in 0..4 {
                        for k in 0..T {
                            s[t][k] = _mm256_set1_epi32(bias[k][8 * h + 2 * t + cc]);
                        }
                    }
                    for c in 4 * cc..4 * cc + 4 {
                        let q = q6k_codes(wb, h, c);
                        for k in 0..T {
                            let xq = p.xb(k, b).add(Q8K_QS + 128 * h + 4 * c);
                            for t in 0..4 {
                                s[t][k] =
                                    _mm256_dpbusd_epi32(s[t][k], q[t], bcast4(xq.add(32 * t)));
                            }
                        }
                    }
                    for t in 0..4 {
                        let sj = sc[8 * h + 2 * t + cc];
                        for k in 0..T {
                            isum[k] = _mm256_add_epi32(isum[k], _mm256_mullo_epi32(s[t][k], sj));
                        }
                    }
                }
            }
            let dw = f16x8(wb.add(Q6_D));
            for k in 0..T {
                let d = dx(p.xb(k, b));
                acc[k] = scale_add(acc[k], isum[k], _mm256_mul_ps(dw, d));
            }
        }
        for k in 0..T {
            _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
        }
    }
}

#[cfg(test)]
mod tests_support {
    //! Weight and activation builders shared by the tests and the benchmark.
    use super::*;
    use hearth_gguf::QK_K;
    use rand::rngs::StdRng;
    use rand::Rng;

    pub(super) const TYPES: [GgmlType; 2] = [GgmlType::Q4_K, GgmlType::Q6_K];

    /// Offsets of the f16 scales inside a GGUF block.
    pub(super) fn f16_offsets(ty: GgmlType) -> &'static [usize] {
        match ty {
            GgmlType::Q4_K => &[0, 2],
            _ => &[208],
        }
    }

    /// A finite, normal f16 of either sign, magnitude 2⁻¹³..2⁻¹.
    pub(super) fn normal_f16(rng: &mut StdRng) -> [u8; 2] {
        let mag = 2f32.powf(rng.gen_range(-13.0f32..-1.0));
        let v = if rng.gen_bool(0.5) { mag } else { -mag };
        let h = f16::from_f32(v);
        assert!(h.is_normal());
        h.to_le_bytes()
    }

    /// 8 rows of `nb` blocks, every byte `fill(rng)` except normal f16 scales.
    pub(super) fn rows_with(
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

    pub(super) fn random_rows(ty: GgmlType, nb: usize, rng: &mut StdRng) -> Vec<u8> {
        rows_with(ty, nb, rng, |_, r| r.gen())
    }

    /// Extreme weight blocks: every code and scale byte set to one value (Q6_K's scales
    /// separately, so both the largest codes and ±max scales appear).
    pub(super) fn extreme_rows(ty: GgmlType, nb: usize, rng: &mut StdRng) -> Vec<Vec<u8>> {
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
    pub(super) fn random_x(nb: usize, tokens: usize, rng: &mut StdRng) -> Vec<u8> {
        let n = nb * QK_K;
        let x: Vec<f32> = (0..tokens * n)
            .map(|_| rng.gen_range(-3.0f32..3.0))
            .collect();
        let mut xq = vec![0u8; tokens * nb * Q8K];
        for (src, dst) in x.chunks_exact(n).zip(xq.chunks_exact_mut(nb * Q8K)) {
            crate::quantize_row(GgmlType::Q8_K, src, dst).unwrap();
        }
        xq
    }

    /// One Q8_K row with quants `q(i)` (any i8, −128 included), consistent bsums and `d`.
    pub(super) fn fixed_x(nb: usize, d: f32, q: impl Fn(usize) -> i8) -> Vec<u8> {
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

    pub(super) fn extreme_x(nb: usize, rng: &mut StdRng) -> Vec<u8> {
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
    pub(super) fn q4k_sums(w: &[u8], xb: &[u8]) -> (i32, i32) {
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
    pub(super) fn q6k_sum(w: &[u8], xb: &[u8]) -> i32 {
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
    pub(super) fn gguf_ref(ty: GgmlType, group: &[u8], x: &[u8]) -> [f32; 8] {
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
    pub(super) fn pack_all(ty: GgmlType, nb: usize, rows: &[u8]) -> Vec<u8> {
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
            crate::dequantize_row(GgmlType::Q8_K, x, &mut xf).unwrap();
            let got = dot_ref(ty, nb, &packed, x);
            for r in 0..ROWS {
                crate::dequantize_row(ty, &rows[r * nb * bs..(r + 1) * nb * bs], &mut wf).unwrap();
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

    /// A kernel under test.
    #[cfg(target_arch = "x86_64")]
    type Kernel = unsafe fn(GgmlType, usize, &Tile, usize, usize);

    /// The kernels this CPU can run, by name.
    #[cfg(target_arch = "x86_64")]
    fn kernels() -> Vec<(&'static str, Kernel)> {
        use crate::simd::{detect, Level};
        let mut k: Vec<(&'static str, Kernel)> = Vec::new();
        if detect().has_avx2() {
            k.push(("avx2", tile_avx2));
        }
        if detect() == Level::Avx512Vnni {
            k.push(("vnni", tile_vnni));
        }
        if k.is_empty() {
            eprintln!("no AVX2 on this CPU: only the reference is tested");
        }
        k
    }

    #[cfg(target_arch = "x86_64")]
    /// Runs every kernel on `groups` packed groups × the `tokens` rows of `xq` and checks
    /// each output's bits against `dot_ref`, and that nothing outside the outputs is written.
    fn check_kernels(ty: GgmlType, nb: usize, packed: &[u8], xq: &[u8], tokens: usize) {
        let gb = ROWS * nb * ty.type_size();
        let groups = packed.len() / gb;
        let xrb = nb * Q8K;
        let ostride = ROWS * groups + 3;
        let sentinel = -1234.5f32;
        let want: Vec<[f32; 8]> = (0..groups * tokens)
            .map(|i| {
                let (g, k) = (i / tokens, i % tokens);
                dot_ref(
                    ty,
                    nb,
                    &packed[g * gb..(g + 1) * gb],
                    &xq[k * xrb..(k + 1) * xrb],
                )
            })
            .collect();
        for (name, kernel) in kernels() {
            let mut out = vec![sentinel; tokens * ostride];
            let t = Tile {
                w: packed.as_ptr(),
                wrb: gb,
                x: xq.as_ptr(),
                xrb,
                out: out.as_mut_ptr(),
                ostride,
            };
            // SAFETY: `kernels` returned only kernels this CPU supports; the buffers hold
            // `groups` packed groups, `tokens` Q8_K rows and `tokens * ostride` outputs.
            unsafe { kernel(ty, nb, &t, groups, tokens) };
            for k in 0..tokens {
                for c in 0..ostride {
                    let got = out[k * ostride + c];
                    if c >= ROWS * groups {
                        assert_eq!(got, sentinel, "{name} {ty} wrote column {c}");
                        continue;
                    }
                    let w = want[(c / ROWS) * tokens + k][c % ROWS];
                    assert_eq!(
                        got.to_bits(),
                        w.to_bits(),
                        "{name} {ty} nb={nb} groups={groups} tokens={tokens} token {k} \
                         row {c}: {got} vs reference {w}"
                    );
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernels_equal_the_reference_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(10);
        for ty in TYPES {
            for nb in 1..=3 {
                for groups in 1..=3 {
                    let packed = pack_all(ty, nb, &random_rows(ty, nb * groups, &mut rng));
                    // `random_rows` makes 8 rows of `nb * groups` blocks: the same bytes as
                    // `groups` groups of 8 rows of `nb` blocks.
                    let xq = random_x(nb, 17, &mut rng);
                    for tokens in 1..=17 {
                        check_kernels(ty, nb, &packed, &xq[..tokens * nb * Q8K], tokens);
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernels_equal_the_reference_at_a_real_width() {
        // 3584 values per row (Qwen-style hidden size), two groups.
        let (mut rng, nb) = (StdRng::seed_from_u64(11), 14);
        for ty in TYPES {
            let packed = pack_all(ty, nb, &random_rows(ty, 2 * nb, &mut rng));
            let xq = random_x(nb, 17, &mut rng);
            for tokens in [1, 2, 3, 4, 5, 8, 9, 12, 16, 17] {
                check_kernels(ty, nb, &packed, &xq[..tokens * nb * Q8K], tokens);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernels_equal_the_reference_on_extreme_blocks() {
        let (mut rng, nb) = (StdRng::seed_from_u64(12), 2);
        for ty in TYPES {
            for rows in extreme_rows(ty, 2 * nb, &mut rng) {
                let packed = pack_all(ty, nb, &rows);
                let mut xq = extreme_x(nb, &mut rng);
                xq.extend(random_x(nb, 4, &mut rng));
                let tokens = xq.len() / (nb * Q8K);
                for t in [1, 2, 4, tokens] {
                    check_kernels(ty, nb, &packed, &xq[..t * nb * Q8K], t);
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
