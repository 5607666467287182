//! The paged KV cache.
//!
//! Keys and values live in fixed-size blocks of [`BLOCK_TOKENS`] positions taken from a pool;
//! each sequence holds a block table per *layer group* mapping its logical blocks to pool blocks.
//! Layers are grouped by how far back they look: full-attention layers keep every position,
//! sliding-window layers (Gemma 3's local layers) only their window, so their blocks that fall
//! fully behind the window go back to the pool and Gemma's KV memory stays bounded.
//!
//! K and V are stored as f16 (llama.cpp's default KV type), written for a whole batch before any
//! query reads them, and read in position order. The planner counts exactly
//! [`KvCache::bytes_per_block`].
//!
//! # Sharing
//!
//! Blocks are reference counted so that sequences with a common prefix can hold the same blocks
//! ([`KvCache::fork`]): the prefix is computed once and every holder reads the same bits, which
//! is what makes a prefix-cache hit exact. Only *full* blocks of positions already written are
//! ever shared, and a sequence only writes positions past its own length, so a shared block is
//! never written; [`KvCache::truncate`] keeps that true when a sequence is cut back into a block
//! someone else also holds. A block returns to the free list when its last holder lets go.
//!
//! # Sizing
//!
//! [`KvCache::new`] sizes the pool for `max_seqs` sequences of `ctx` positions;
//! [`KvCache::with_budget`] scales the same split between groups to a byte budget. Either way the
//! storage is one zeroed allocation per group, so pages become resident only when first written.

use half::f16;

use crate::config::Config;
use crate::{Error, Result};

/// Positions per block.
pub const BLOCK_TOKENS: usize = 16;

/// Layers that share block tables: all full-attention layers, or all sliding-window layers.
#[derive(Debug)]
struct Group {
    /// Sliding window of these layers, `None` for full attention.
    window: Option<usize>,
    n_layers: usize,
    n_blocks: usize,
    k_dim: usize,
    v_dim: usize,
    /// (layer in group, block, position in block, k_dim), f16 bits.
    k: Vec<u16>,
    /// (layer in group, block, position in block, v_dim), f16 bits.
    v: Vec<u16>,
    /// Free block ids; popped from the end.
    free: Vec<u32>,
    /// Holders of each block (block tables that list it); 0 for a free block.
    refs: Vec<u32>,
}

/// One sequence's view of the cache: a block table per layer group and how many positions hold
/// keys and values.
///
/// Not `Clone`: a copy would hold the blocks without counting as a holder. Use
/// [`KvCache::fork`] to share blocks.
#[derive(Debug, Default)]
pub struct SeqKv {
    tables: Vec<BlockTable>,
    /// Positions `0..len` are filled.
    len: usize,
    /// Positions `0..capacity` have blocks (or lie behind a released window).
    capacity: usize,
}

#[derive(Debug, Default, Clone)]
struct BlockTable {
    /// Logical block `first + i` lives in pool block `blocks[i]`.
    blocks: Vec<u32>,
    /// Logical blocks before this one were released (behind the sliding window).
    first: usize,
}

impl BlockTable {
    /// One past the last logical block the table holds.
    fn end(&self) -> usize {
        self.first + self.blocks.len()
    }
}

impl SeqKv {
    /// Positions that hold keys and values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions that can be written without reserving more blocks.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records that positions `0..len` are now filled (after a forward pass wrote them).
    pub fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.capacity);
        self.len = len;
    }

    /// Pool blocks this sequence holds in layer group `group` (for accounting).
    pub fn blocks(&self, group: usize) -> &[u32] {
        self.tables.get(group).map_or(&[], |t| &t.blocks)
    }
}

impl AsRef<SeqKv> for SeqKv {
    fn as_ref(&self) -> &SeqKv {
        self
    }
}

/// Where layer `l` lives: its group and its index inside the group.
#[derive(Clone, Copy, Debug)]
struct LayerSlot {
    group: usize,
    index: usize,
}

/// How the blocks of one layer group are used right now (see [`KvCache::usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupUsage {
    /// Blocks in the pool.
    pub total: usize,
    /// Blocks nobody holds.
    pub free: usize,
    /// Blocks held by at least one of the sequences passed as live.
    pub live: usize,
    /// Blocks held, but only by other holders (a prefix cache's retained sequences).
    pub other: usize,
}

/// The pool of KV blocks shared by all sequences of one model.
#[derive(Debug)]
pub struct KvCache {
    groups: Vec<Group>,
    layers: Vec<LayerSlot>,
    /// The most blocks one sequence holds at once in a sliding-window group.
    window_blocks_per_seq: usize,
}

impl KvCache {
    /// A cache for `cfg` able to hold `max_seqs` sequences of `ctx` positions each, with prompt
    /// chunks of up to `max_chunk` tokens.
    ///
    /// The storage is allocated zeroed, so the operating system maps pages only as blocks are
    /// first written: a large `ctx` costs address space, not resident memory, until used.
    pub fn new(cfg: &Config, ctx: usize, max_seqs: usize, max_chunk: usize) -> KvCache {
        let layout = Layout::new(cfg, ctx, max_chunk);
        let full = max_seqs * ctx.div_ceil(BLOCK_TOKENS);
        let windowed = max_seqs * layout.window_blocks_per_seq;
        layout.build(cfg, full, windowed)
    }

    /// A cache of about `budget_bytes` (never more), split between the full-attention and the
    /// sliding-window group in the proportion [`new`](Self::new) would give them. `ctx` and
    /// `max_chunk` fix how many blocks one sliding-window sequence holds; `max_seqs` only sets
    /// the proportion.
    pub fn with_budget(
        cfg: &Config,
        ctx: usize,
        max_seqs: usize,
        max_chunk: usize,
        budget_bytes: usize,
    ) -> KvCache {
        let layout = Layout::new(cfg, ctx, max_chunk);
        let full = max_seqs * ctx.div_ceil(BLOCK_TOKENS);
        let windowed = max_seqs * layout.window_blocks_per_seq;
        let full = if layout.n_full > 0 { full } else { 0 };
        let windowed = if layout.n_swa > 0 { windowed } else { 0 };
        let default_bytes =
            full as u128 * layout.full_block_bytes + windowed as u128 * layout.swa_block_bytes;
        // Scale both groups by budget / default; u128 keeps the products exact.
        let scale = |blocks: usize| -> usize {
            if default_bytes == 0 {
                return 0;
            }
            (blocks as u128 * budget_bytes as u128 / default_bytes) as usize
        };
        layout.build(cfg, scale(full), scale(windowed))
    }

    /// A new, empty sequence view with one table per layer group.
    pub fn new_seq(&self) -> SeqKv {
        SeqKv {
            tables: vec![BlockTable::default(); self.groups.len()],
            len: 0,
            capacity: 0,
        }
    }

    /// Number of layer groups (one or two).
    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }

    /// Sliding window of layer group `group`, `None` for full attention.
    pub fn group_window(&self, group: usize) -> Option<usize> {
        self.groups[group].window
    }

    /// Blocks in the pool of each group.
    pub fn total_blocks(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.n_blocks).collect()
    }

    /// The most blocks a sequence that reaches `len` positions holds at once, per group: every
    /// block for full attention, the window plus a prompt chunk for sliding-window layers.
    pub fn blocks_needed(&self, len: usize) -> Vec<usize> {
        let all = len.div_ceil(BLOCK_TOKENS);
        self.groups
            .iter()
            .map(|g| match g.window {
                None => all,
                Some(_) => all.min(self.window_blocks_per_seq),
            })
            .collect()
    }

    /// Makes room for positions `seq.len()..new_len`, first returning sliding-window blocks the
    /// next query (at position `seq.len()`) can no longer see.
    pub fn reserve(&mut self, seq: &mut SeqKv, new_len: usize) -> Result<()> {
        let next_pos = seq.len;
        // Count what is needed in every group before taking anything, so failure leaves the
        // sequence as it was.
        let mut needed = Vec::with_capacity(self.groups.len());
        for (g, table) in self.groups.iter().zip(&seq.tables) {
            let want_end = new_len.div_ceil(BLOCK_TOKENS);
            let mut releasable = 0;
            if let Some(w) = g.window {
                // A released block frees pool space only when no one else holds it.
                let r = releasable_blocks(table, next_pos, w);
                releasable = table.blocks[..r]
                    .iter()
                    .filter(|&&b| g.refs[b as usize] == 1)
                    .count();
            }
            let need = want_end.saturating_sub(table.end());
            if need > g.free.len() + releasable {
                return Err(Error::KvFull {
                    needed: need,
                    free: g.free.len() + releasable,
                });
            }
            needed.push(need);
        }
        for ((g, table), need) in self
            .groups
            .iter_mut()
            .zip(seq.tables.iter_mut())
            .zip(needed)
        {
            if let Some(w) = g.window {
                let r = releasable_blocks(table, next_pos, w);
                for b in table.blocks.drain(..r) {
                    g.unref(b);
                }
                table.first += r;
            }
            for _ in 0..need {
                // Counted above: the free list holds at least `need` blocks now.
                let b = g.take().ok_or(Error::KvFull {
                    needed: need,
                    free: 0,
                })?;
                table.blocks.push(b);
            }
        }
        seq.capacity = seq
            .capacity
            .max(new_len.div_ceil(BLOCK_TOKENS) * BLOCK_TOKENS);
        Ok(())
    }

    /// Takes now the full-attention blocks `seq` needs to reach `len` positions, so it cannot
    /// run out of them later (sliding-window groups take theirs as they go, because they also
    /// give blocks back). Nothing is taken when the pool is short.
    pub fn reserve_ahead(&mut self, seq: &mut SeqKv, len: usize) -> Result<()> {
        let want_end = len.div_ceil(BLOCK_TOKENS);
        for (g, table) in self.groups.iter().zip(&seq.tables) {
            let need = want_end.saturating_sub(table.end());
            if g.window.is_none() && need > g.free.len() {
                return Err(Error::KvFull {
                    needed: need,
                    free: g.free.len(),
                });
            }
        }
        for (g, table) in self.groups.iter_mut().zip(seq.tables.iter_mut()) {
            if g.window.is_some() {
                continue;
            }
            while table.end() < want_end {
                // Counted above.
                let b = g.take().ok_or(Error::KvFull {
                    needed: want_end - table.end(),
                    free: 0,
                })?;
                table.blocks.push(b);
            }
        }
        Ok(())
    }

    /// Whether [`fork`](Self::fork) of `src` at `len` would succeed.
    pub fn can_fork(&self, src: &SeqKv, len: usize) -> bool {
        len > 0
            && len.is_multiple_of(BLOCK_TOKENS)
            && len <= src.len
            && self
                .groups
                .iter()
                .zip(&src.tables)
                .all(|(g, t)| shared_start(g.window, t, len).is_some())
    }

    /// A new sequence holding the blocks of `src`'s first `len` positions (a whole number of
    /// blocks, all written): the prefix it shares with `src`, computed once. Sliding-window
    /// groups take only the blocks the next query can see; `None` when `src` has already let
    /// some of them go.
    pub fn fork(&mut self, src: &SeqKv, len: usize) -> Option<SeqKv> {
        if !self.can_fork(src, len) {
            return None;
        }
        let mut tables = Vec::with_capacity(self.groups.len());
        for (g, t) in self.groups.iter_mut().zip(&src.tables) {
            let start = shared_start(g.window, t, len)?;
            let end = len / BLOCK_TOKENS;
            let blocks = t.blocks[start - t.first..end - t.first].to_vec();
            for &b in &blocks {
                g.refs[b as usize] += 1;
            }
            tables.push(BlockTable {
                blocks,
                first: start,
            });
        }
        Some(SeqKv {
            tables,
            len,
            capacity: len,
        })
    }

    /// Cuts a sequence back to at most `len` positions and lets go of the blocks past them.
    /// Returns the length kept: `len`, or less when the block holding position `len` is shared
    /// (later writes must go to blocks this sequence holds alone, so the cut moves back to that
    /// block's start). `None` when a sliding-window group has already released positions the
    /// shorter sequence would need; the caller must [`release`](Self::release) and start over.
    pub fn truncate(&mut self, seq: &mut SeqKv, len: usize) -> Option<usize> {
        let mut keep = len.min(seq.len);
        if !keep.is_multiple_of(BLOCK_TOKENS) {
            let logical = keep / BLOCK_TOKENS;
            let shared = self.groups.iter().zip(&seq.tables).any(|(g, t)| {
                logical >= t.first
                    && t.blocks
                        .get(logical - t.first)
                        .is_some_and(|&b| g.refs[b as usize] > 1)
            });
            if shared {
                keep -= keep % BLOCK_TOKENS;
            }
        }
        for (g, table) in self.groups.iter().zip(&seq.tables) {
            if let Some(w) = g.window {
                let first_needed = keep.saturating_sub(w - 1);
                if table.first * BLOCK_TOKENS > first_needed {
                    return None;
                }
            }
        }
        seq.len = keep;
        self.trim(seq);
        Some(keep)
    }

    /// Lets go of the blocks past a sequence's length (blocks taken ahead for positions it will
    /// not write after all).
    pub fn trim(&mut self, seq: &mut SeqKv) {
        let end = seq.len.div_ceil(BLOCK_TOKENS);
        for (g, table) in self.groups.iter_mut().zip(seq.tables.iter_mut()) {
            let keep = end.saturating_sub(table.first).min(table.blocks.len());
            for b in table.blocks.drain(keep..) {
                g.unref(b);
            }
        }
        seq.capacity = seq.capacity.min(end * BLOCK_TOKENS);
    }

    /// Lets go of every block of `seq` (each returns to the pool unless another sequence also
    /// holds it) and empties it.
    pub fn release(&mut self, seq: &mut SeqKv) {
        for (g, table) in self.groups.iter_mut().zip(seq.tables.iter_mut()) {
            for b in table.blocks.drain(..) {
                g.unref(b);
            }
            table.first = 0;
        }
        seq.len = 0;
        seq.capacity = 0;
    }

    /// Free blocks per group (for metrics and the scheduler).
    pub fn free_blocks(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.free.len()).collect()
    }

    /// Per group: blocks held by the `live` sequences, blocks held only by others, and free
    /// blocks. Every block is in exactly one of the three.
    pub fn usage<'a>(&self, live: impl IntoIterator<Item = &'a SeqKv> + Clone) -> Vec<GroupUsage> {
        let mut out = Vec::with_capacity(self.groups.len());
        for (gi, g) in self.groups.iter().enumerate() {
            let mut marked = vec![false; g.n_blocks];
            let mut n_live = 0;
            for seq in live.clone() {
                for &b in seq.blocks(gi) {
                    let m = &mut marked[b as usize];
                    if !*m {
                        *m = true;
                        n_live += 1;
                    }
                }
            }
            let held = g.n_blocks - g.free.len();
            out.push(GroupUsage {
                total: g.n_blocks,
                free: g.free.len(),
                live: n_live,
                other: held - n_live,
            });
        }
        out
    }

    /// Bytes one block of each group takes across all its layers, K and V.
    pub fn bytes_per_block(&self) -> Vec<usize> {
        self.groups
            .iter()
            .map(|g| g.n_layers * BLOCK_TOKENS * (g.k_dim + g.v_dim) * 2)
            .collect()
    }

    /// Total bytes reserved for storage (resident only once written).
    pub fn capacity_bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|g| (g.k.len() + g.v.len()) * 2)
            .sum()
    }

    /// Sliding window of `layer`, if it is a sliding-window layer.
    pub fn window(&self, layer: usize) -> Option<usize> {
        self.groups[self.layers[layer].group].window
    }

    /// Stores the key and value rows of position `pos` of `seq` for `layer`, converting to f16.
    pub fn write(
        &mut self,
        layer: usize,
        seq: &SeqKv,
        pos: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<()> {
        let slot = self.layers[layer];
        let g = &mut self.groups[slot.group];
        let block = block_of(&seq.tables[slot.group], pos, seq.capacity)?;
        // Shared blocks hold positions every holder has already written (see the module docs).
        debug_assert_eq!(g.refs[block as usize], 1, "write into a shared block");
        let kd = g.k_dim;
        let vd = g.v_dim;
        let row = (slot.index * g.n_blocks + block as usize) * BLOCK_TOKENS + pos % BLOCK_TOKENS;
        for (dst, &x) in g.k[row * kd..(row + 1) * kd].iter_mut().zip(k) {
            *dst = f16::from_f32(x).to_bits();
        }
        for (dst, &x) in g.v[row * vd..(row + 1) * vd].iter_mut().zip(v) {
            *dst = f16::from_f32(x).to_bits();
        }
        Ok(())
    }

    /// Read access to `layer`'s rows for one sequence.
    pub fn view<'a>(&'a self, layer: usize, seq: &'a SeqKv) -> LayerView<'a> {
        let slot = self.layers[layer];
        let g = &self.groups[slot.group];
        LayerView {
            table: &seq.tables[slot.group],
            k: &g.k,
            v: &g.v,
            k_dim: g.k_dim,
            v_dim: g.v_dim,
            base: slot.index * g.n_blocks,
        }
    }
}

/// The layer groups of a model and what one block of each costs, before the pool is sized.
struct Layout {
    n_full: usize,
    n_swa: usize,
    window: usize,
    window_blocks_per_seq: usize,
    full_block_bytes: u128,
    swa_block_bytes: u128,
}

impl Layout {
    fn new(cfg: &Config, ctx: usize, max_chunk: usize) -> Layout {
        let n_full = cfg.layer_is_swa.iter().filter(|s| !**s).count();
        let n_swa = cfg.n_layer - n_full;
        let window = cfg.sliding_window.unwrap_or(ctx);
        // A sequence holds the window, the chunk being written, and one partial block at each
        // end.
        let per_seq = (window.min(ctx) + max_chunk).div_ceil(BLOCK_TOKENS) + 2;
        let row = BLOCK_TOKENS as u128 * (cfg.kv_dim_k() + cfg.kv_dim_v()) as u128 * 2;
        Layout {
            n_full,
            n_swa,
            window,
            window_blocks_per_seq: per_seq.min(ctx.div_ceil(BLOCK_TOKENS)),
            full_block_bytes: n_full as u128 * row,
            swa_block_bytes: n_swa as u128 * row,
        }
    }

    /// The cache with `full` blocks for the full-attention group and `windowed` for the
    /// sliding-window group (each present only when the model has such layers).
    fn build(&self, cfg: &Config, full: usize, windowed: usize) -> KvCache {
        let mut groups = Vec::new();
        let mut layers = Vec::with_capacity(cfg.n_layer);
        let mut full_group = None;
        let mut swa_group = None;
        if self.n_full > 0 {
            full_group = Some(groups.len());
            groups.push(Group::new(None, self.n_full, full, cfg));
        }
        if self.n_swa > 0 {
            swa_group = Some(groups.len());
            groups.push(Group::new(Some(self.window), self.n_swa, windowed, cfg));
        }
        let (mut i_full, mut i_swa) = (0, 0);
        for &is_swa in &cfg.layer_is_swa {
            if is_swa {
                layers.push(LayerSlot {
                    group: swa_group.unwrap_or(0),
                    index: i_swa,
                });
                i_swa += 1;
            } else {
                layers.push(LayerSlot {
                    group: full_group.unwrap_or(0),
                    index: i_full,
                });
                i_full += 1;
            }
        }
        KvCache {
            groups,
            layers,
            window_blocks_per_seq: self.window_blocks_per_seq,
        }
    }
}

/// Blocks at the front of `table` that no query at position `next_pos` or later can see through
/// a window of `w` (key j is visible to query i iff i − j < w), keeping one block more than the
/// window needs: then the sequence can still be forked or cut back at the start of the block
/// holding its end (prefixes are shared in whole blocks), and it still holds at most
/// `(w + chunk).div_ceil(BLOCK_TOKENS) + 2` blocks, the per-sequence count the pool is sized for.
fn releasable_blocks(table: &BlockTable, next_pos: usize, w: usize) -> usize {
    let first_kept = (next_pos + 1).saturating_sub(w + BLOCK_TOKENS);
    let dead_end = first_kept / BLOCK_TOKENS; // logical blocks before this are dead
    dead_end.saturating_sub(table.first).min(table.blocks.len())
}

/// The first logical block a sequence forked at `len` needs from `table` (every block for full
/// attention; those the query at `len` sees through the window otherwise), or `None` when the
/// table no longer holds all the blocks from there to `len`.
fn shared_start(window: Option<usize>, table: &BlockTable, len: usize) -> Option<usize> {
    let end = len / BLOCK_TOKENS;
    let start = match window {
        None => 0,
        Some(w) => ((len + 1).saturating_sub(w) / BLOCK_TOKENS).min(end),
    };
    (table.first <= start && table.end() >= end).then_some(start)
}

fn block_of(table: &BlockTable, pos: usize, capacity: usize) -> Result<u32> {
    let logical = pos / BLOCK_TOKENS;
    if pos >= capacity || logical < table.first {
        return Err(Error::PositionOutOfRange { pos, capacity });
    }
    table
        .blocks
        .get(logical - table.first)
        .copied()
        .ok_or(Error::PositionOutOfRange { pos, capacity })
}

impl Group {
    fn new(window: Option<usize>, n_layers: usize, n_blocks: usize, cfg: &Config) -> Group {
        let k_dim = cfg.kv_dim_k();
        let v_dim = cfg.kv_dim_v();
        let rows = n_layers * n_blocks * BLOCK_TOKENS;
        Group {
            window,
            n_layers,
            n_blocks,
            k_dim,
            v_dim,
            k: vec![0u16; rows * k_dim],
            v: vec![0u16; rows * v_dim],
            // Reversed so blocks are handed out in increasing order (nicer to debug).
            free: (0..n_blocks as u32).rev().collect(),
            refs: vec![0; n_blocks],
        }
    }

    /// A free block, now held once.
    fn take(&mut self) -> Option<u32> {
        let b = self.free.pop()?;
        self.refs[b as usize] = 1;
        Some(b)
    }

    /// One holder lets go of `b`; the last one returns it to the free list.
    fn unref(&mut self, b: u32) {
        let r = &mut self.refs[b as usize];
        debug_assert!(*r > 0, "block {b} released more often than taken");
        *r = r.saturating_sub(1);
        if *r == 0 {
            self.free.push(b);
        }
    }
}

/// One layer's keys and values for one sequence.
pub struct LayerView<'a> {
    table: &'a BlockTable,
    k: &'a [u16],
    v: &'a [u16],
    k_dim: usize,
    v_dim: usize,
    base: usize,
}

impl LayerView<'_> {
    fn row(&self, pos: usize) -> usize {
        let logical = pos / BLOCK_TOKENS;
        // Callers only read positions inside the table (attention clamps to the window).
        let block = self.table.blocks[logical - self.table.first] as usize;
        (self.base + block) * BLOCK_TOKENS + pos % BLOCK_TOKENS
    }

    /// Key row at `pos` (all KV heads), f16 bits.
    #[inline]
    pub fn k(&self, pos: usize) -> &[u16] {
        let r = self.row(pos);
        &self.k[r * self.k_dim..(r + 1) * self.k_dim]
    }

    /// Value row at `pos` (all KV heads), f16 bits.
    #[inline]
    pub fn v(&self, pos: usize) -> &[u16] {
        let r = self.row(pos);
        &self.v[r * self.v_dim..(r + 1) * self.v_dim]
    }

    /// The first position still held (sliding-window layers release older ones).
    pub fn first_pos(&self) -> usize {
        self.table.first * BLOCK_TOKENS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TinySpec;
    use crate::Model;

    fn config(arch: &'static str) -> Config {
        let gguf = hearth_gguf::Gguf::from_bytes(TinySpec::new(arch).build()).expect("gguf");
        Model::from_gguf(gguf).expect("model").config().clone()
    }

    /// A sequence holding `len` written positions.
    fn filled(kv: &mut KvCache, len: usize) -> SeqKv {
        let mut s = kv.new_seq();
        kv.reserve(&mut s, len).expect("reserve");
        s.set_len(len);
        s
    }

    #[test]
    fn a_budget_scales_both_groups_alike() {
        let cfg = config("gemma3");
        let full = KvCache::new(&cfg, 256, 3, 24);
        // 16 blocks of context and (4 + 24).div_ceil(16) + 2 window blocks per sequence.
        assert_eq!(full.total_blocks(), vec![48, 12]);
        let same = KvCache::with_budget(&cfg, 256, 3, 24, full.capacity_bytes());
        assert_eq!(same.total_blocks(), full.total_blocks());
        let third = KvCache::with_budget(&cfg, 256, 3, 24, full.capacity_bytes() / 3);
        assert_eq!(third.total_blocks(), vec![16, 4]);
        assert!(third.capacity_bytes() <= full.capacity_bytes() / 3);
        assert_eq!(third.blocks_needed(100), vec![7, 4]);
    }

    #[test]
    fn shared_blocks_return_with_their_last_holder() {
        let cfg = config("llama");
        let mut kv = KvCache::new(&cfg, 64, 2, 16);
        let mut a = filled(&mut kv, 40);
        assert!(!kv.can_fork(&a, 20), "only whole blocks are shared");
        assert!(!kv.can_fork(&a, 48), "only written positions are shared");
        let mut b = kv.fork(&a, 32).expect("fork");
        assert_eq!(b.blocks(0), &a.blocks(0)[..2]);
        assert_eq!(kv.free_blocks(), vec![8 - 3]);
        let u = kv.usage([&b]);
        assert_eq!((u[0].live, u[0].other, u[0].free), (2, 1, 5));
        kv.release(&mut a);
        assert_eq!(
            kv.free_blocks(),
            vec![6],
            "a's own block is free, the shared two are b's"
        );
        kv.release(&mut b);
        assert_eq!(kv.free_blocks(), vec![8]);
    }

    #[test]
    fn cutting_back_into_a_shared_block_moves_to_its_start() {
        let cfg = config("llama");
        let mut kv = KvCache::new(&cfg, 64, 2, 16);
        let mut a = filled(&mut kv, 40);
        let b = kv.fork(&a, 32).expect("fork");
        assert_eq!(kv.truncate(&mut a, 20), Some(16));
        assert_eq!(a.blocks(0), &b.blocks(0)[..1]);
        kv.reserve(&mut a, 30).expect("reserve");
        assert!(
            !b.blocks(0).contains(&a.blocks(0)[1]),
            "a writes to a block of its own"
        );
        // Without a sharer the cut stays where it was asked.
        let mut c = filled(&mut kv, 20);
        assert_eq!(kv.truncate(&mut c, 10), Some(10));
    }

    #[test]
    fn a_window_group_frees_only_blocks_nobody_else_holds() {
        let cfg = config("gemma3"); // window 4
        let mut kv = KvCache::new(&cfg, 256, 2, 16);
        let a = filled(&mut kv, 48);
        let mut b = kv.fork(&a, 48).expect("fork");
        let swa = 1;
        // The query at 48 sees 45..47: b holds only the block with them.
        assert_eq!(b.blocks(swa), &a.blocks(swa)[a.blocks(swa).len() - 1..]);
        let before = kv.free_blocks()[swa];
        kv.reserve(&mut b, 100).expect("reserve");
        b.set_len(100);
        kv.reserve(&mut b, 101).expect("reserve");
        // b let go of the shared block (a still holds it) and took blocks 3..=6, then released
        // those behind its window but one.
        assert!(!b
            .blocks(swa)
            .contains(&a.blocks(swa)[a.blocks(swa).len() - 1]));
        assert_eq!(b.blocks(swa).len(), 2);
        assert_eq!(kv.free_blocks()[swa], before - 2);
    }
}
