//! Packing at load: every matrix with packed kernels is re-laid into groups of eight
//! interleaved rows in one anonymous arena, the file's pages released behind it.

use std::sync::Mutex;

use hearth_gguf::Gguf;

use super::Weight;
use crate::{Error, Result};

/// Whether weights are packed at load: where the CPU has packed kernels, unless
/// `HEARTH_PACK=off` (for comparing the two layouts' speed; both give correct results, in
/// slightly different last bits).
pub(super) fn packing_enabled() -> bool {
    hearth_kernels::packed::has_kernels()
        && !std::env::var("HEARTH_PACK").is_ok_and(|v| v.eq_ignore_ascii_case("off") || v == "0")
}

/// Bytes of a tensor packed before its file pages are released.
const PACK_SLICE: usize = 4 << 20;

/// Packs every matrix whose type and shape have packed kernels
/// (`hearth_kernels::packed::packable`) into one anonymous arena, a few MB at a time, and
/// releases the mapped file pages behind each slice: the model takes no more resident memory
/// than before and the peak is a few slices over it. The arena asks for transparent huge
/// pages (fewer page faults while packing, fewer TLB misses while streaming the weights).
/// Decode and prompt processing then run the packed kernels (eight rows per SIMD register,
/// the same kernel for any number of tokens).
pub(super) fn pack_weights(
    gguf: &Gguf,
    weights: &mut [&mut Weight],
) -> Result<Option<memmap2::MmapMut>> {
    use hearth_kernels::packed;
    let mut total = 0usize;
    for w in weights.iter_mut() {
        if !packed::packable(w.ty, w.rows, w.cols) {
            continue;
        }
        let len = w.rows * hearth_kernels::row_bytes(w.ty, w.cols);
        w.packed = Some(total..total + len);
        // Each tensor starts on a cache line.
        total = (total + len).next_multiple_of(64);
    }
    if total == 0 {
        return Ok(None);
    }
    let mut arena = memmap2::MmapMut::map_anon(total).map_err(|source| Error::PackedMemory {
        bytes: total,
        source,
    })?;
    #[cfg(target_os = "linux")]
    // Only a hint: without huge pages the arena works the same.
    let _ = arena.advise(memmap2::Advice::HugePage);
    // One job per tensor, each with its own slice of the arena; the cores take them largest
    // first (writing fresh memory and the re-layout both scale with cores).
    let mut jobs: Vec<(&Weight, &mut [u8])> = Vec::new();
    let mut rest: &mut [u8] = &mut arena;
    let mut at = 0;
    let mut order: Vec<&Weight> = weights.iter().map(|w| &**w).collect();
    order.retain(|w| w.packed.is_some());
    order.sort_by_key(|w| w.packed.as_ref().map_or(0, |r| r.start));
    for w in order {
        let Some(range) = w.packed.clone() else {
            continue;
        };
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(range.start - at);
        let (dst, tail) = tail.split_at_mut(range.len());
        rest = tail;
        at = range.end;
        jobs.push((w, dst));
    }
    // Ascending, so `pop` hands out the largest remaining tensor.
    jobs.sort_by_key(|(_, dst)| dst.len());
    let jobs = Mutex::new(jobs);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some((w, dst)) = job else { break };
                let bytes = w.byte_range();
                let src = &gguf.tensor_data(&gguf.tensors()[w.index])[bytes.clone()];
                // A few MB of whole groups at a time, releasing the file's pages behind each
                // slice, so the peak stays a slice over the final size even for a large table.
                let gb = packed::GROUP * hearth_kernels::row_bytes(w.ty, w.cols);
                let step = (PACK_SLICE / gb).max(1) * gb;
                for at in (0..src.len()).step_by(step) {
                    let end = (at + step).min(src.len());
                    let rows = (end - at) / gb * packed::GROUP;
                    let r = packed::pack_into(w.ty, rows, w.cols, &src[at..end], &mut dst[at..end]);
                    if let Err(e) = r {
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                    gguf.release_tensor_bytes(w.index, bytes.start + at..bytes.start + end);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e.into());
    }
    Ok(Some(arena))
}
