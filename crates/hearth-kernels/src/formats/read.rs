//! The read-bandwidth probe's loop, portable reference: the xor of a buffer's little-endian
//! 64-bit words (a last partial word zero-padded). Xor is associative and commutative, so a
//! SIMD loop that folds the words into several lanes and combines them at the end gives the
//! same value; the value itself only keeps the compiler from dropping the reads.

/// The xor of `buf`'s little-endian u64 words, a partial last word padded with zeros.
pub(crate) fn xor_words(buf: &[u8]) -> u64 {
    let mut words = buf.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        acc ^= u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    acc ^ u64::from_le_bytes(last)
}
