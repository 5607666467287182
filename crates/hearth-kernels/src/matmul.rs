//! Quantized matrix × activations: the one routine every projection runs through.
//!
//! `out[t][r] = vec_dot(W[r], x[t])` for weight rows `r` and activation rows `t` on row-major
//! weights. A [packed](crate::packed) matrix goes to the packed kernels instead, whose outputs
//! are defined by the packed scalar reference; everything below about tiles and `vec_dot`
//! concerns row-major weights (floats, and types or shapes that are not packable).
//!
//! # Batch invariance
//! Each output element equals one [`crate::vec_dot`] call on one weight row and one activation
//! row, bit for bit, so its bits depend on nothing but those two rows: not on how many tokens
//! are in the batch, where the token sits, or how many threads run. Threads therefore split
//! **rows**, never the reduction over `cols`: the rows are cut into a few chunks per thread
//! (whole cache-blocking groups), which threads claim one at a time
//! ([`ThreadPool::run_chunks`]), so a thread the OS has descheduled delays no one; which thread
//! computes a row never changes its bits.
//!
//! # Tiles (prompt processing)
//! One token at a time, every weight block is loaded, unpacked and its scale converted once
//! per token. For batches, tile kernels (on x86 `x86::legacy_tile` for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0:
//! 2 rows × 4 tokens, `x86::kquants_tile` for Q4_K/Q5_K/Q6_K: 1 row × 4 tokens; on aarch64 the
//! same shapes in `arm::legacy_tile` and `arm::kquants_tile`) unpack each weight block once for
//! all the tile's tokens. Each (row, token) pair keeps its own accumulators and
//! performs exactly the single-token kernel's integer products (exact) and float operations
//! in the same order, which is why the bits do not change; tail tokens (`n % 4`) and the odd
//! last row run as narrower tiles of the same code. `testing::dot_tile` exposes the tiles so
//! tests check them against `vec_dot`. Decode (one token) keeps the single-token kernels, which
//! interleave four accumulators per row for latency and give the same bits.
//!
//! # Cache blocking
//! With many tokens, a thread walks its rows in small groups sized to stay in L1, and runs
//! every token against the group before moving on, so each weight byte comes from memory once
//! per matmul instead of once per token. Within a group the tiles walk four tokens at a time
//! over all its rows, so those tokens' activations stay in L1 too.

use crate::dispatch::{quantize_row, vec_dot};
use crate::pool::ThreadPool;
use crate::types::{activation_type, row_bytes, Error, QMatrix, Result, SharedOut, Tile};
use hearth_gguf::GgmlType;

/// Weight bytes a thread keeps hot while it runs every token over them (half of a typical
/// 32 KB L1d, leaving room for the activation row being read).
const GROUP_BYTES: usize = 16 * 1024;

/// `out[t * w.rows + r] = vec_dot(w.row(r), xq.row(t))` for `n_tokens` activation rows `xq`
/// encoded as `activation_type(w.ty)`, each `row_bytes(act, w.cols)` long.
///
/// # Panics
/// If `w.ty` is unsupported or a buffer size does not match `w`'s shape and `n_tokens`
/// (a programming error in the caller; [`QMatrix::new`] and [`quantize_activations`] produce
/// the right sizes).
pub fn matmul(pool: &ThreadPool, w: &QMatrix<'_>, xq: &[u8], n_tokens: usize, out: &mut [f32]) {
    let act = activation_type(w.ty).unwrap_or_else(|e| panic!("matmul: {e}"));
    let wrb = w.row_bytes();
    let xrb = row_bytes(act, w.cols);
    assert_eq!(
        w.data.len(),
        w.rows * wrb,
        "matmul: weight bytes for {} x {} {}",
        w.rows,
        w.cols,
        w.ty
    );
    assert_eq!(
        xq.len(),
        n_tokens * xrb,
        "matmul: activation bytes for {n_tokens} tokens of {} {act}",
        w.cols
    );
    assert_eq!(
        out.len(),
        n_tokens * w.rows,
        "matmul: output length for {n_tokens} tokens x {} rows",
        w.rows
    );
    if n_tokens == 0 || w.rows == 0 {
        return;
    }
    if w.packed {
        return crate::packed::matmul_packed(pool, w, xq, n_tokens, out);
    }

    let rows = w.rows;
    // Even, so row pairs of the tile kernels never straddle two groups.
    let group = (GROUP_BYTES / wrb.max(1)).clamp(2, 64) & !1;
    let out_ptr = SharedOut(out.as_mut_ptr());
    // Decode (one token) keeps the single-token kernels: they interleave four accumulators
    // per row, which a one-column tile cannot, and give the same bits anyway.
    let tile = if n_tokens > 1 {
        crate::dispatch::tile_kernel(crate::simd::level(), w.ty)
    } else {
        None
    };
    let nb = w.cols / w.ty.block_size();
    let groups = rows.div_ceil(group);
    let n_chunks = chunks_for(pool, groups);
    pool.run_chunks(n_chunks, |_, c| {
        let r0 = (c * groups / n_chunks * group).min(rows);
        let r1 = ((c + 1) * groups / n_chunks * group).min(rows);
        let out_ptr = &out_ptr;
        let mut g0 = r0;
        while g0 < r1 {
            let g1 = (g0 + group).min(r1);
            if let Some(kernel) = tile {
                let t = Tile {
                    w: w.data[g0 * wrb..].as_ptr(),
                    wrb,
                    x: xq.as_ptr(),
                    xrb,
                    out: out_ptr.0.wrapping_add(g0),
                    ostride: rows,
                };
                // SAFETY: `tile_kernel` returned this kernel for `w.ty` on the process's
                // level, so the CPU has its features. Rows `g0..g1` of `w` and the
                // `n_tokens` rows of `xq` hold `nb` blocks each (lengths checked above);
                // outputs `(r, t)` for `r` in `g0..g1` are inside `out` and belong to this
                // thread alone (as in the loop below).
                unsafe { kernel(w.ty, nb, &t, g1 - g0, n_tokens) };
            } else {
                for t in 0..n_tokens {
                    let x = &xq[t * xrb..(t + 1) * xrb];
                    for r in g0..g1 {
                        let v = vec_dot(w.ty, w.cols, &w.data[r * wrb..(r + 1) * wrb], x);
                        // SAFETY: `t < n_tokens` and `r < rows`, so the index is inside
                        // `out` (length checked above). Chunk `c` only writes rows in its
                        // own range `[r0, r1)`, the ranges of different chunks are disjoint,
                        // and each chunk runs once, so no two threads write the same element;
                        // `out` is borrowed mutably for the whole `run_chunks`, which returns
                        // only after every chunk is done.
                        unsafe { *out_ptr.0.add(t * rows + r) = v };
                    }
                }
            }
            g0 = g1;
        }
    });
}

/// Chunks per thread a matmul's rows are cut into. More chunks let running threads take over
/// a descheduled thread's share in smaller pieces; each costs one atomic claim (tens of ns),
/// far below a chunk's work even for the smallest decode matmul.
pub(crate) const CHUNKS_PER_THREAD: usize = 4;

/// How many chunks to cut `units` indivisible pieces of work into on `pool`: one on a
/// one-thread pool (no claiming at all), else a few per thread, never more than `units`.
pub(crate) fn chunks_for(pool: &ThreadPool, units: usize) -> usize {
    let nt = pool.n_threads();
    if nt == 1 {
        return 1;
    }
    (nt * CHUNKS_PER_THREAD)
        .min(units)
        .clamp(1, crate::pool::MAX_CHUNKS)
}

/// Encodes `x` (`x.len() / cols` rows of `cols` f32) as `act_ty`, one row after another, into
/// `out`, which is resized to fit; its capacity never shrinks, so a reused buffer stops
/// allocating once it has seen the largest batch.
pub fn quantize_activations(
    act_ty: GgmlType,
    x: &[f32],
    cols: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(Error::NotWholeRows { len: x.len(), cols });
    }
    let block = act_ty.block_size();
    if !cols.is_multiple_of(block) {
        return Err(Error::BadLength {
            ty: act_ty,
            n: cols,
            block,
        });
    }
    let rb = row_bytes(act_ty, cols);
    let n_tokens = x.len() / cols;
    out.resize(n_tokens * rb, 0);
    for (src, dst) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        quantize_row(act_ty, src, dst)?;
    }
    Ok(())
}
