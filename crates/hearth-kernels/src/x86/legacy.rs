//! The 32-element formats' single-token kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; layouts and
//! scalar reference in `formats::legacy`) and the Q8_0 / Q8_1 activation encoder: AVX2, and the
//! same kernels with AVX-512 VNNI. Each block becomes 32 signed (or unsigned) bytes in one
//! register; `maddubs` multiplies u8 × i8 into i16 pairs and `madd` with ones widens them to
//! eight i32 sums (AVX2), or `vpdpbusd` forms those sums in one instruction (VNNI, identical
//! results: see [`IntDot`]). The sums are converted to f32 and scaled by `d_w * d_x` with one
//! FMA per block. Block `i` goes to accumulator `i % 4`, so consecutive FMAs do not wait on
//! each other: this measured 1.4x faster than ggml's single accumulator (and so is not
//! bit-identical to llama.cpp's `ggml_vec_dot_*`, only equally accurate).

use std::arch::x86_64::*;

/// Reads an f16 with F16C (exact, like `half`, but without `half`'s run-time check).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: callers pass a pointer to two readable bytes inside a block.
    let bits = u16::from_le(unsafe { (p as *const u16).read_unaligned() });
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 16 packed bytes → 32 bytes in 0..=15: low nibbles in the low half (elements 0..16),
/// high nibbles in the high half (elements 16..32), matching the block layout.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: `p` points at 16 readable bytes (a block's `qs`).
    let t = unsafe { _mm_loadu_si128(p as *const __m128i) };
    // Both halves hold the 16 bytes (a load-port broadcast, no shuffle); shifting only the
    // high half right by 4 brings the high nibbles down before masking.
    let both = _mm256_broadcastsi128_si256(t);
    let both = _mm256_srlv_epi64(both, _mm256_set_epi64x(4, 4, 0, 0));
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Spreads the 32 bits of `qh` to 32 bytes: 0xFF where the bit is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn bits_to_bytes(qh: u32) -> __m256i {
    // Byte k gets byte k/8 of qh; OR-ing every bit except bit k%8 then comparing with
    // all-ones tests bit k%8.
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// The integer dot product at the heart of every 32-element kernel: 32 u8 × 32 i8 into
/// eight i32 lanes, lane `k` the sum of the four products of bytes `4k..4k + 4`, in two
/// instruction sets. The kernel bodies are generic over it and compiled once per level
/// (see the `kernels!` macro below).
///
/// # Same bits on both levels
/// [`Madd`] forms the pair sums in i16 (`maddubs`, which saturates) and widens pairs of
/// them to i32 (`madd` with ones); [`Vnni`] (`vpdpbusd`) sums the four products straight
/// into i32. The two agree exactly whenever no i16 pair sum saturates, which holds for
/// every format here (`u` unsigned, `y` an activation quant in `-128..=127`):
/// - Q4_0 / Q4_1 codes `u ≤ 15`: `|pair| ≤ 2 · 15 · 128 = 3840`;
/// - Q5_0 / Q5_1 codes `u ≤ 31`: `|pair| ≤ 2 · 31 · 128 = 7936`;
/// - the bias terms (8 or 16 times `y`): `|pair| ≤ 2 · 16 · 128 = 4096`, and the i16
///   difference `maddubs(u, y) - maddubs(bias, y)` stays within `7936 + 4096`;
/// - Q8_0 × Q8_0 via the sign trick, `u = |x| ≤ 128` and `y' = ±y` in `-128..=127`:
///   `pair ∈ [2 · 128 · -128, 2 · 128 · 127] = [-32768, 32512]`, inside i16.
///
/// So the i32 lanes are identical, and the f32 conversion and scaling after them are the
/// same instructions: a VNNI result equals the AVX2 result bit for bit.
pub(super) trait IntDot {
    /// The level whose single-token kernels use this dot (the tiles' fallback for rows
    /// too long for their scale buffer).
    const LEVEL: crate::simd::Level;
    /// Weight rows per multi-token tile (times `tile::TOKENS` tokens): the most whose
    /// accumulators, operands and temporaries fit in this level's vector registers.
    const TILE_ROWS: usize;
    /// Σ `u × y` per lane, as f32.
    ///
    /// # Safety
    /// The CPU has the features of [`IntDot::LEVEL`].
    unsafe fn us8(u: __m256i, y: __m256i) -> __m256;
    /// The term [`IntDot::biased`] removes for codes stored with offset `bias`; it depends
    /// only on the activations, so a tile computes it once per token for all its rows.
    ///
    /// # Safety
    /// As [`IntDot::us8`].
    unsafe fn bias_term(bias: i8, y: __m256i) -> __m256i;
    /// Σ `(u - bias) × y` per lane, as f32, given `by = bias_term(bias, y)`.
    ///
    /// # Safety
    /// As [`IntDot::us8`].
    unsafe fn biased(u: __m256i, y: __m256i, by: __m256i) -> __m256;
}

/// AVX2: `maddubs` then `madd` with ones.
pub(super) struct Madd;

impl IntDot for Madd {
    const LEVEL: crate::simd::Level = crate::simd::Level::Avx2;
    /// 2 × 4 accumulators: the 16 ymm registers of AVX2 hold no more without spilling.
    const TILE_ROWS: usize = 2;

    #[inline(always)]
    unsafe fn us8(u: __m256i, y: __m256i) -> __m256 {
        let p16 = _mm256_maddubs_epi16(u, y);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
    }

    #[inline(always)]
    unsafe fn bias_term(bias: i8, y: __m256i) -> __m256i {
        _mm256_maddubs_epi16(_mm256_set1_epi8(bias), y)
    }

    /// `maddubs(u, y) - maddubs(bias, y)` in i16 (exact, see [`IntDot`]), then one `madd`:
    /// the signed products without the two `sign` steps.
    #[inline(always)]
    unsafe fn biased(u: __m256i, y: __m256i, by: __m256i) -> __m256 {
        let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(u, y), by);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
    }
}

/// AVX-512 VNNI (256-bit, so AVX-512VL): one `vpdpbusd` per product.
pub(super) struct Vnni;

/// `acc + Σ u × y` per i32 lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
pub(super) fn dpbusd(acc: __m256i, u: __m256i, y: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, u, y)
}

impl IntDot for Vnni {
    const LEVEL: crate::simd::Level = crate::simd::Level::Avx512Vnni;
    /// 4 × 4 accumulators: AVX-512VL gives 32 ymm registers. Measured 2-4% faster than
    /// 2 rows on Zen 4 (the multiply pipes, not the shared unpacking, bound these tiles).
    const TILE_ROWS: usize = 4;

    #[inline(always)]
    unsafe fn us8(u: __m256i, y: __m256i) -> __m256 {
        // SAFETY: the caller's contract: this CPU has AVX-512 VNNI and VL.
        _mm256_cvtepi32_ps(unsafe { dpbusd(_mm256_setzero_si256(), u, y) })
    }

    /// `-Σ bias × y`, so that [`IntDot::biased`] is one accumulate into it.
    #[inline(always)]
    unsafe fn bias_term(bias: i8, y: __m256i) -> __m256i {
        let zero = _mm256_setzero_si256();
        // SAFETY: as in `us8`.
        _mm256_sub_epi32(zero, unsafe { dpbusd(zero, _mm256_set1_epi8(bias), y) })
    }

    #[inline(always)]
    unsafe fn biased(u: __m256i, y: __m256i, by: __m256i) -> __m256 {
        // SAFETY: as in `us8`. The i32 sum `Σ u y - Σ bias y` is exact (|lane| < 2^15).
        _mm256_cvtepi32_ps(unsafe { dpbusd(by, u, y) })
    }
}

/// Σ over groups of i8 × i8: moves x's sign onto y so the unsigned operand is |x|.
///
/// # Safety
/// As [`IntDot::us8`].
#[inline(always)]
pub(super) unsafe fn dot_ss8<D: IntDot>(x: __m256i, y: __m256i) -> __m256 {
    // SAFETY: forwarded from the caller.
    unsafe { D::us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) }
}

/// Σ over groups of `(u - bias) × y` for unsigned codes `u` (< 32) and signed `y`.
///
/// # Safety
/// As [`IntDot::us8`].
#[inline(always)]
unsafe fn dot_biased<D: IntDot>(u: __m256i, y: __m256i, bias: i8) -> __m256 {
    // SAFETY: forwarded from the caller.
    unsafe { D::biased(u, y, D::bias_term(bias, y)) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: `p` points at 32 readable bytes (a block's quants).
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// The f16 fields at `p + k * stride` for `k` in 0..8, widened to f32. Assembling the
/// eight halves in general registers and converting once keeps the shuffle port free for
/// the quants (one `vcvtph2ps` per block pair of scales was the bottleneck).
///
/// # Safety
/// `p + k * stride` points at two readable bytes for every `k < 8`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16x8(p: *const u8, stride: usize) -> __m256 {
    // SAFETY: the caller guarantees the eight fields are readable.
    let h = |k: usize| {
        u64::from(u16::from_le(unsafe {
            (p.add(k * stride) as *const u16).read_unaligned()
        }))
    };
    let lo = h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48;
    let hi = h(4) | h(5) << 16 | h(6) << 32 | h(7) << 48;
    _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64))
}

/// Shared loop for weights scaled by `d` only. `products(block, y)` returns the eight i32
/// partial sums (as f32) of the block's quants times the activation quants `y`; the
/// activation format is Q8_0 (34-byte blocks).
///
/// # Safety
/// The CPU has AVX2/FMA/F16C; `w` holds `nb` blocks of `wbs` bytes, `x` `nb` Q8_0 blocks.
#[inline(always)]
pub(super) unsafe fn dot_sym(
    nb: usize,
    w: &[u8],
    wbs: usize,
    x: &[u8],
    products: impl Fn(*const u8, __m256i) -> __m256,
) -> f32 {
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    // `d_w * d_x` and the eight i32 partial sums (as f32) of block `i`.
    let block = |i: usize| {
        // SAFETY: block `i < nb` lies inside `w` and `x` (caller's contract); both start
        // with an f16 scale and x's quants follow at byte 2.
        unsafe {
            let (wb, xb) = (wp.add(i * wbs), xp.add(i * 34));
            let d = _mm256_set1_ps(f16_at(wb) * f16_at(xb));
            (d, products(wb, load32(xb.add(2))))
        }
    };
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // Eight blocks at a time with their scales converted together; the products
    // `d_w * d_x` are the same single multiplications as in `block`, so this path and the
    // one-block path give identical bits, and block `i` always feeds `acc[i % 4]`.
    while i + 8 <= nb {
        // SAFETY: blocks `i..i + 8` lie inside `w` and `x`; each starts with its scale.
        let d8 = unsafe { _mm256_mul_ps(f16x8(wp.add(i * wbs), wbs), f16x8(xp.add(i * 34), 34)) };
        let mut ds = [0f32; 8];
        // SAFETY: `ds` holds eight f32.
        unsafe { _mm256_storeu_ps(ds.as_mut_ptr(), d8) };
        for (k, d) in ds.iter().enumerate() {
            // SAFETY: as in `block`.
            let q = unsafe {
                let (wb, xb) = (wp.add((i + k) * wbs), xp.add((i + k) * 34));
                products(wb, load32(xb.add(2)))
            };
            acc[k % 4] = _mm256_fmadd_ps(_mm256_broadcast_ss(d), q, acc[k % 4]);
        }
        i += 8;
    }
    while i + 4 <= nb {
        for (k, a) in acc.iter_mut().enumerate() {
            let (d, q) = block(i + k);
            *a = _mm256_fmadd_ps(d, q, *a);
        }
        i += 4;
    }
    for (k, j) in (i..nb).enumerate() {
        let (d, q) = block(j);
        acc[k] = _mm256_fmadd_ps(d, q, acc[k]);
    }
    hsum(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

/// Shared loop for weights with a minimum (`d * q + m`) against Q8_1 (36-byte blocks):
/// `Σ (d q + m) d_x q_x = d d_x Σ q q_x + m s_x`.
///
/// # Safety
/// As [`dot_sym`], with `x` holding `nb` Q8_1 blocks.
#[inline(always)]
unsafe fn dot_offset<D: IntDot>(
    nb: usize,
    w: &[u8],
    wbs: usize,
    x: &[u8],
    quants: impl Fn(*const u8) -> __m256i,
) -> f32 {
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    // `d_w * d_x`, the i32 partial sums (as f32) and `m_w * s_x` of block `i`.
    let block = |i: usize| {
        // SAFETY: block `i < nb` lies inside `w` and `x` (caller's contract): d at
        // byte 0, m / s at byte 2, x's quants at byte 4.
        unsafe {
            let (wb, xb) = (wp.add(i * wbs), xp.add(i * 36));
            let d = _mm256_set1_ps(f16_at(wb) * f16_at(xb));
            let ms = f16_at(wb.add(2)) * f16_at(xb.add(2));
            (d, D::us8(quants(wb), load32(xb.add(4))), ms)
        }
    };
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut summs = [0.0f32; 4];
    let mut i = 0;
    // Eight blocks at a time with scales converted together (see `dot_sym`); the same
    // products, added in the same order, so the bits match the one-block path.
    while i + 8 <= nb {
        let (wb0, xb0) = (wp.wrapping_add(i * wbs), xp.wrapping_add(i * 36));
        // SAFETY: blocks `i..i + 8` lie inside `w` and `x`: d at byte 0, m / s at byte 2.
        let (d8, ms8) = unsafe {
            (
                _mm256_mul_ps(f16x8(wb0, wbs), f16x8(xb0, 36)),
                _mm256_mul_ps(f16x8(wb0.add(2), wbs), f16x8(xb0.add(2), 36)),
            )
        };
        let (mut ds, mut ms) = ([0f32; 8], [0f32; 8]);
        // SAFETY: both arrays hold eight f32.
        unsafe {
            _mm256_storeu_ps(ds.as_mut_ptr(), d8);
            _mm256_storeu_ps(ms.as_mut_ptr(), ms8);
        }
        for k in 0..8 {
            // SAFETY: as in `block`.
            let q = unsafe {
                let (wb, xb) = (wp.add((i + k) * wbs), xp.add((i + k) * 36));
                D::us8(quants(wb), load32(xb.add(4)))
            };
            acc[k % 4] = _mm256_fmadd_ps(_mm256_broadcast_ss(&ds[k]), q, acc[k % 4]);
            summs[k % 4] += ms[k];
        }
        i += 8;
    }
    while i + 4 <= nb {
        for k in 0..4 {
            let (d, q, ms) = block(i + k);
            acc[k] = _mm256_fmadd_ps(d, q, acc[k]);
            summs[k] += ms;
        }
        i += 4;
    }
    for (k, j) in (i..nb).enumerate() {
        let (d, q, ms) = block(j);
        acc[k] = _mm256_fmadd_ps(d, q, acc[k]);
        summs[k] += ms;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(v) + ((summs[0] + summs[1]) + (summs[2] + summs[3]))
}

/// [`crate::formats::legacy::quantize_q8_row`] with AVX2, giving the same bytes: the maximum of |x| does
/// not depend on evaluation order, `d` and `1/d` are the same scalar operations, and
/// `x * id` rounded half-to-even (`vroundps` with `_MM_FROUND_TO_NEAREST_INT`) is what
/// `round_ties_even` computes; codes are within ±127 so conversion and packing are exact.
/// (Only non-finite inputs, which no sane activation holds, could encode differently.)
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `src` holds whole blocks and `dst` their encoding.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8_row(src: &[f32], dst: &mut [u8], with_sum: bool) {
    let bs = if with_sum { 36 } else { 34 };
    let qoff = bs - 32;
    for (x, b) in src.chunks_exact(32).zip(dst.chunks_exact_mut(bs)) {
        // SAFETY: `x` holds 32 f32, read with unaligned loads.
        let v: [__m256; 4] =
            std::array::from_fn(|k| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) });
        let sign = _mm256_set1_ps(-0.0);
        let abs = |a: __m256| _mm256_andnot_ps(sign, a);
        let m = _mm256_max_ps(
            _mm256_max_ps(abs(v[0]), abs(v[1])),
            _mm256_max_ps(abs(v[2]), abs(v[3])),
        );
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let idv = _mm256_set1_ps(id);
        let q: [__m256i; 4] = std::array::from_fn(|k| {
            let r = _mm256_round_ps(
                _mm256_mul_ps(v[k], idv),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            );
            _mm256_cvtps_epi32(r)
        });
        // i32 → i16 → i8 packs interleave 128-bit lanes; the permute restores order.
        let p01 = _mm256_packs_epi32(q[0], q[1]);
        let p23 = _mm256_packs_epi32(q[2], q[3]);
        let p = _mm256_packs_epi16(p01, p23);
        let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: `b` holds a whole block; its 32 quants start at `qoff`.
        unsafe { _mm256_storeu_si256(b.as_mut_ptr().add(qoff) as *mut __m256i, p) };
        b[0..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        if with_sum {
            let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            let s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01));
            let sum = _mm_cvtsi128_si32(s4);
            b[2..4].copy_from_slice(&half::f16::from_f32(d * sum as f32).to_le_bytes());
        }
    }
}

/// Q4_0 × Q8_0 with dot `D`.
///
/// # Safety
/// See [`dot_sym`]; the CPU has the features of `D::LEVEL`.
#[inline(always)]
unsafe fn q4_0<D: IntDot>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY (closure): `b` is a Q4_0 block; its 16 nibble bytes start at byte 2.
    unsafe {
        dot_sym(nb, w, 18, x, |b, y| {
            dot_biased::<D>(nibbles(b.add(2)), y, 8)
        })
    }
}

/// Q5_0 × Q8_0 with dot `D`.
///
/// # Safety
/// See [`q4_0`].
#[inline(always)]
unsafe fn q5_0<D: IntDot>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY (closure): `b` is a Q5_0 block: qh at byte 2, nibbles at byte 6.
    unsafe {
        dot_sym(nb, w, 22, x, |b, y| {
            let qh = (b.add(2) as *const u32).read_unaligned().to_le();
            let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
            dot_biased::<D>(_mm256_or_si256(nibbles(b.add(6)), hi), y, 16)
        })
    }
}

/// Q8_0 × Q8_0 with dot `D`.
///
/// # Safety
/// See [`q4_0`].
#[inline(always)]
unsafe fn q8_0<D: IntDot>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY (closure): `b` is a Q8_0 block: 32 quants at byte 2.
    unsafe { dot_sym(nb, w, 34, x, |b, y| dot_ss8::<D>(load32(b.add(2)), y)) }
}

/// Q4_1 × Q8_1 with dot `D`.
///
/// # Safety
/// See [`dot_offset`]; the CPU has the features of `D::LEVEL`.
#[inline(always)]
unsafe fn q4_1<D: IntDot>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY (closure): `b` is a Q4_1 block: nibbles at byte 4.
    unsafe { dot_offset::<D>(nb, w, 20, x, |b| nibbles(b.add(4))) }
}

/// Q5_1 × Q8_1 with dot `D`.
///
/// # Safety
/// See [`q4_1`].
#[inline(always)]
unsafe fn q5_1<D: IntDot>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY (closure): `b` is a Q5_1 block: qh at byte 4, nibbles at byte 8.
    unsafe {
        dot_offset::<D>(nb, w, 24, x, |b| {
            let qh = (b.add(4) as *const u32).read_unaligned().to_le();
            let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
            _mm256_or_si256(nibbles(b.add(8)), hi)
        })
    }
}

/// The single-token entry points of one level: the generic bodies above compiled under
/// that level's `target_feature` set (the only way to vary it; a generic function cannot
/// take its features from a type parameter).
macro_rules! kernels {
    ($(#[$doc:meta])* $name:ident, $features:literal, $dot:ty) => {
        $(#[$doc])*
        pub(crate) mod $name {
            use super::*;

            /// The dot product of `nb` blocks of weight type `ty` with its activations.
            ///
            /// # Safety
            /// The CPU has the features of this level; `w` and `x` hold `nb` blocks of
            /// `ty` and of its activation type (Q8_0, or Q8_1 for Q4_1 / Q5_1).
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn vec_dot(
                ty: hearth_gguf::GgmlType,
                nb: usize,
                w: &[u8],
                x: &[u8],
            ) -> f32 {
                use hearth_gguf::GgmlType::*;
                // SAFETY: forwarded from the caller.
                unsafe {
                    match ty {
                        Q4_0 => q4_0::<$dot>(nb, w, x),
                        Q4_1 => q4_1::<$dot>(nb, w, x),
                        Q5_0 => q5_0::<$dot>(nb, w, x),
                        Q5_1 => q5_1::<$dot>(nb, w, x),
                        Q8_0 => q8_0::<$dot>(nb, w, x),
                        other => unreachable!("legacy::vec_dot called with {other}"),
                    }
                }
            }
        }
    };
}

kernels!(
    /// AVX2 (+FMA, F16C): `maddubs` + `madd`.
    madd,
    "avx2,fma,f16c",
    Madd
);
kernels!(
    /// AVX2 plus AVX-512 VNNI / VL / BW: `vpdpbusd`.
    vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw",
    Vnni
);
