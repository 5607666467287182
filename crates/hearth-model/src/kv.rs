//! The paged KV cache.
//!
//! Keys and values live in fixed-size blocks of [`BLOCK_TOKENS`] positions taken from a pool;
//! each sequence holds a block table per *layer group* mapping its logical blocks to pool blocks.
//! Layers are grouped by how far back they look: full-attention layers keep every position,
//! sliding-window layers (Gemma 3's local layers) only their window, so their blocks that fall
//! fully behind the window go back to the pool and Gemma's KV memory stays bounded.
//!
//! K and V are stored as f16 (llama.cpp's default KV type), written for a whole batch before any
//! query reads them, and read in position order. Serving builds continuous batching and prefix
//! sharing on these tables; the planner counts exactly [`KvCache::bytes_per_block`].

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
}

/// One sequence's view of the cache: a block table per layer group and how many positions hold
/// keys and values.
#[derive(Debug, Default, Clone)]
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

/// The pool of KV blocks shared by all sequences of one model.
#[derive(Debug)]
pub struct KvCache {
    groups: Vec<Group>,
    layers: Vec<LayerSlot>,
}

impl KvCache {
    /// A cache for `cfg` able to hold `max_seqs` sequences of `ctx` positions each, with prompt
    /// chunks of up to `max_chunk` tokens.
    ///
    /// The storage is allocated zeroed, so the operating system maps pages only as blocks are
    /// first written: a large `ctx` costs address space, not resident memory, until used.
    pub fn new(cfg: &Config, ctx: usize, max_seqs: usize, max_chunk: usize) -> KvCache {
        let full_blocks = max_seqs * ctx.div_ceil(BLOCK_TOKENS);
        let mut groups = Vec::new();
        let mut layers = Vec::with_capacity(cfg.n_layer);
        let n_full = cfg.layer_is_swa.iter().filter(|s| !**s).count();
        let n_swa = cfg.n_layer - n_full;
        let mut full_group = None;
        let mut swa_group = None;
        if n_full > 0 {
            full_group = Some(groups.len());
            groups.push(Group::new(None, n_full, full_blocks, cfg));
        }
        if n_swa > 0 {
            let window = cfg.sliding_window.unwrap_or(ctx);
            // A sequence holds the window, the chunk being written, and one partial block at
            // each end.
            let per_seq = (window.min(ctx) + max_chunk).div_ceil(BLOCK_TOKENS) + 2;
            let blocks = max_seqs * per_seq.min(ctx.div_ceil(BLOCK_TOKENS));
            swa_group = Some(groups.len());
            groups.push(Group::new(Some(window), n_swa, blocks, cfg));
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
        KvCache { groups, layers }
    }

    /// A new, empty sequence view with one table per layer group.
    pub fn new_seq(&self) -> SeqKv {
        SeqKv {
            tables: vec![BlockTable::default(); self.groups.len()],
            len: 0,
            capacity: 0,
        }
    }

    /// Makes room for positions `seq.len()..new_len`, first returning sliding-window blocks the
    /// next query (at position `seq.len()`) can no longer see.
    pub fn reserve(&mut self, seq: &mut SeqKv, new_len: usize) -> Result<()> {
        let next_pos = seq.len;
        // Count what is needed in every group before taking anything, so failure leaves the
        // sequence as it was.
        let mut needed = Vec::with_capacity(self.groups.len());
        for (g, table) in self.groups.iter().zip(&seq.tables) {
            let have_end = table.first + table.blocks.len();
            let want_end = new_len.div_ceil(BLOCK_TOKENS);
            let mut releasable = 0;
            if let Some(w) = g.window {
                releasable = releasable_blocks(table, next_pos, w);
            }
            let need = want_end.saturating_sub(have_end);
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
                    g.free.push(b);
                }
                table.first += r;
            }
            for _ in 0..need {
                // Counted above: the free list holds at least `need` blocks now.
                let b = g.free.pop().ok_or(Error::KvFull {
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

    /// Forgets positions `len..` of a sequence (keeping its blocks for reuse). Returns `false`
    /// when a sliding-window group has already released positions the shorter sequence would
    /// need, in which case the caller must [`release`](Self::release) and start over.
    pub fn truncate(&mut self, seq: &mut SeqKv, len: usize) -> bool {
        if len >= seq.len {
            return true;
        }
        for (g, table) in self.groups.iter().zip(&seq.tables) {
            if let Some(w) = g.window {
                let first_needed = len.saturating_sub(w - 1);
                if table.first * BLOCK_TOKENS > first_needed {
                    return false;
                }
            }
        }
        seq.len = len;
        true
    }

    /// Returns every block of `seq` to the pool and empties it.
    pub fn release(&mut self, seq: &mut SeqKv) {
        for (g, table) in self.groups.iter_mut().zip(seq.tables.iter_mut()) {
            g.free.append(&mut table.blocks);
            table.first = 0;
        }
        seq.len = 0;
        seq.capacity = 0;
    }

    /// Free blocks per group (for metrics and the scheduler).
    pub fn free_blocks(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.free.len()).collect()
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

/// Blocks at the front of `table` that no query at position `next_pos` or later can see through
/// a window of `w` (key j is visible to query i iff i − j < w).
fn releasable_blocks(table: &BlockTable, next_pos: usize, w: usize) -> usize {
    let first_visible = (next_pos + 1).saturating_sub(w);
    let dead_end = first_visible / BLOCK_TOKENS; // logical blocks before this are dead
    dead_end.saturating_sub(table.first).min(table.blocks.len())
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
