//! The read-bandwidth probe's loop on AVX2: 256-byte steps into eight independent xor
//! accumulators, so the loads, not a dependency chain, set the pace, as in the decode
//! kernels, which stream their weights with 32-byte loads too.

use std::arch::x86_64::*;

/// [`crate::formats::read::xor_words`] with AVX2, the same value.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn xor_words(buf: &[u8]) -> u64 {
    const STEP: usize = 256;
    let body = buf.len() / STEP * STEP;
    let p = buf.as_ptr();
    let mut acc = [_mm256_setzero_si256(); 8];
    let mut at = 0;
    while at < body {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `at + 32 j + 32 <= body <= buf.len()`; unaligned loads.
            let v = unsafe { _mm256_loadu_si256(p.add(at + 32 * j) as *const __m256i) };
            *a = _mm256_xor_si256(*a, v);
        }
        at += STEP;
    }
    let mut v = acc[0];
    for a in &acc[1..] {
        v = _mm256_xor_si256(v, *a);
    }
    let lanes = [
        _mm256_extract_epi64::<0>(v),
        _mm256_extract_epi64::<1>(v),
        _mm256_extract_epi64::<2>(v),
        _mm256_extract_epi64::<3>(v),
    ];
    // Every 256-byte step is 32 whole words, so the tail starts on a word boundary.
    lanes.iter().fold(0u64, |x, &l| x ^ l as u64) ^ crate::formats::read::xor_words(&buf[body..])
}
