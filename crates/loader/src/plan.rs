//! The pure part of the loader: which samples this loader instance reads in an epoch, in
//! which order, cut into which batches. Nothing here does I/O, so the sharding, shuffling
//! and resume rules are property-tested on plain integers (`tests/plan_props.rs`) and the
//! async loader feeds the very same [`Sharder`] from a streamed listing.
//!
//! The rules, for `R = world_size` ranks, `W = num_workers` workers per rank, batch size `B`:
//!
//! 1. The epoch's global order is the dataset order, or (with shuffle) a permutation drawn
//!    from `(seed, epoch)` by [`permutation`]: the same on every rank, different per epoch.
//! 2. Rank `r` takes global positions `p` with `p % R == r` (strided, so it works while a
//!    listing is still streaming). The tail is evened out by [`Remainder`]: `Pad` repeats
//!    samples from the start of the global order until every rank has `ceil(n / R)` (those
//!    repeats are flagged as padding), `Drop` keeps only the `floor(n / R) * R` first
//!    positions, `Uneven` leaves ranks with counts differing by at most one.
//! 3. Resume: the first `consumed` samples of the rank's sequence are skipped.
//! 4. The rank's remaining sequence is cut into batches of `B`; with `drop_last` a final
//!    partial batch is dropped. Rank batch `b` belongs to worker `b % W`, so reading the
//!    workers' batches round-robin (as PyTorch's DataLoader does) gives back the rank's
//!    sequence exactly.

use std::fmt::Debug;

/// How ranks are evened out when the dataset size is not a multiple of `world_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Remainder {
    /// Repeat samples from the start of the epoch's order so every rank reads
    /// `ceil(n / world_size)` samples (as PyTorch's `DistributedSampler` does). Repeats are
    /// marked [`Planned::padding`]. Every sample is read at least once.
    #[default]
    Pad,
    /// Read only the first `floor(n / world_size) * world_size` positions of the epoch's
    /// order. Every sample is read at most once.
    Drop,
    /// No evening out: every sample exactly once, rank counts differ by at most one (and so
    /// may batch counts: do not use with DDP training, fine for evaluation).
    Uneven,
}

/// Where one loader instance sits in the job and how its epoch is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub rank: usize,
    pub world_size: usize,
    pub worker_id: usize,
    pub num_workers: usize,
    pub batch_size: usize,
    pub drop_last: bool,
    pub remainder: Remainder,
    /// Samples of this rank's sequence already consumed this epoch (resume point).
    pub consumed: u64,
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            worker_id: 0,
            num_workers: 1,
            batch_size: 1,
            drop_last: false,
            remainder: Remainder::Pad,
            consumed: 0,
        }
    }
}

/// One planned sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<T> {
    pub item: T,
    /// A repeat added by [`Remainder::Pad`] to even out ranks.
    pub padding: bool,
}

/// One planned batch of this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch<T> {
    /// This worker's batch number in the epoch (0, 1, 2, ... after a resume too).
    pub number: u64,
    /// The batch's number in the rank's sequence (`number * num_workers + worker_id`).
    pub rank_batch: u64,
    pub items: Vec<Planned<T>>,
}

/// Turns the epoch's global order, pushed one item at a time, into this worker's batches.
/// Holds at most `world_size` items of look-behind (for padding) and one batch.
#[derive(Debug)]
pub struct Sharder<T> {
    spec: ShardSpec,
    /// Global positions pushed so far.
    pos: u64,
    /// The first `world_size` items of the order, for padding.
    first: Vec<T>,
    /// With `Remainder::Drop`: this rank's item of the current row of `world_size`
    /// positions, kept until the row is complete.
    held: Option<T>,
    /// Items of the rank's sequence produced so far (skipped ones included).
    local: u64,
    batch: Vec<Planned<T>>,
    rank_batches: u64,
    finished: bool,
}

impl<T: Clone + Debug> Sharder<T> {
    /// `spec` must be valid (see [`ShardSpec::validate`]).
    pub fn new(spec: ShardSpec) -> Self {
        Self {
            spec,
            pos: 0,
            first: Vec::new(),
            held: None,
            local: 0,
            batch: Vec::with_capacity(spec.batch_size),
            rank_batches: 0,
            finished: false,
        }
    }

    /// The next item of the global order; completed batches of this worker go to `out`.
    pub fn push(&mut self, item: T, out: &mut Vec<PlannedBatch<T>>) {
        debug_assert!(!self.finished);
        let r = self.spec.world_size as u64;
        let p = self.pos;
        self.pos += 1;
        if (self.first.len() as u64) < r {
            self.first.push(item.clone());
        }
        let mine = p % r == self.spec.rank as u64;
        match self.spec.remainder {
            Remainder::Drop => {
                if mine {
                    self.held = Some(item);
                }
                if p % r == r - 1 {
                    if let Some(h) = self.held.take() {
                        self.rank_item(h, false, out);
                    }
                }
            }
            Remainder::Pad | Remainder::Uneven => {
                if mine {
                    self.rank_item(item, false, out);
                }
            }
        }
    }

    /// The global order has ended: pad or drop, and emit the last partial batch unless
    /// `drop_last`.
    pub fn finish(&mut self, out: &mut Vec<PlannedBatch<T>>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (n, r) = (self.pos, self.spec.world_size as u64);
        self.held = None;
        if self.spec.remainder == Remainder::Pad && n > 0 {
            let total = n.div_ceil(r) * r;
            for q in n..total {
                if q % r == self.spec.rank as u64 {
                    let item = self.first[((q - n) % n) as usize].clone();
                    self.rank_item(item, true, out);
                }
            }
        }
        if !self.batch.is_empty() {
            if self.spec.drop_last {
                self.batch.clear();
            } else {
                self.emit(out);
            }
        }
    }

    /// Global positions seen so far.
    pub fn seen(&self) -> u64 {
        self.pos
    }

    fn rank_item(&mut self, item: T, padding: bool, out: &mut Vec<PlannedBatch<T>>) {
        let m = self.local;
        self.local += 1;
        if m < self.spec.consumed {
            return;
        }
        self.batch.push(Planned { item, padding });
        if self.batch.len() == self.spec.batch_size {
            self.emit(out);
        }
    }

    fn emit(&mut self, out: &mut Vec<PlannedBatch<T>>) {
        let b = self.rank_batches;
        self.rank_batches += 1;
        let w = self.spec.num_workers as u64;
        let items = std::mem::replace(&mut self.batch, Vec::with_capacity(self.spec.batch_size));
        if b % w == self.spec.worker_id as u64 {
            out.push(PlannedBatch {
                number: b / w,
                rank_batch: b,
                items,
            });
        }
    }
}

impl ShardSpec {
    /// Check the numbers make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        if self.world_size == 0 {
            return Err("world_size must be at least 1".into());
        }
        if self.rank >= self.world_size {
            return Err(format!(
                "rank {} is not below world_size {}",
                self.rank, self.world_size
            ));
        }
        if self.num_workers == 0 {
            return Err("num_workers must be at least 1".into());
        }
        if self.worker_id >= self.num_workers {
            return Err(format!(
                "worker_id {} is not below num_workers {}",
                self.worker_id, self.num_workers
            ));
        }
        Ok(())
    }
}

/// The batches of dataset indices this worker reads in an epoch over `order` (a sequence of
/// dataset indices: `0..n`, or a [`permutation`]).
pub fn plan(spec: &ShardSpec, order: impl IntoIterator<Item = u64>) -> Vec<PlannedBatch<u64>> {
    let mut s = Sharder::new(*spec);
    let mut out = Vec::new();
    for i in order {
        s.push(i, &mut out);
    }
    s.finish(&mut out);
    out
}

/// The epoch's global order of `0..n`: identity without shuffle, else a permutation that
/// depends only on `(seed, epoch)` (its own generator, so it never changes with a
/// dependency's version).
pub fn epoch_order(n: u64, shuffle: bool, seed: u64, epoch: u64) -> Vec<u64> {
    if shuffle {
        permutation(n, seed, epoch)
    } else {
        (0..n).collect()
    }
}

/// A Fisher-Yates permutation of `0..n` drawn from `(seed, epoch)`.
pub fn permutation(n: u64, seed: u64, epoch: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    shuffle(&mut v, seed, epoch);
    v
}

/// Shuffle `v` in place, deterministically from `(seed, epoch)`.
pub fn shuffle<T>(v: &mut [T], seed: u64, epoch: u64) {
    let mut rng = SplitMix64::new(seed, epoch);
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// SplitMix64: tiny, fast, and fully specified here, so orders are reproducible forever.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut s = Self(seed ^ 0x6A09_E667_F3BC_C909);
        let a = s.next_u64();
        Self(a ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (multiply-shift; bias below 2^-40 for the sizes used here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(b: &[PlannedBatch<u64>]) -> Vec<Vec<u64>> {
        b.iter()
            .map(|b| b.items.iter().map(|p| p.item).collect())
            .collect()
    }

    #[test]
    fn pads_like_distributed_sampler() {
        // 5 samples over 2 ranks: rank 0 gets 0,2,4; rank 1 gets 1,3 and pads with 0.
        let spec = |rank| ShardSpec {
            rank,
            world_size: 2,
            batch_size: 2,
            ..ShardSpec::default()
        };
        assert_eq!(idx(&plan(&spec(0), 0..5)), vec![vec![0, 2], vec![4]]);
        let r1 = plan(&spec(1), 0..5);
        assert_eq!(idx(&r1), vec![vec![1, 3], vec![0]]);
        assert!(r1[1].items[0].padding);
    }

    #[test]
    fn drop_remainder_and_drop_last() {
        let spec = ShardSpec {
            rank: 1,
            world_size: 3,
            batch_size: 2,
            drop_last: true,
            remainder: Remainder::Drop,
            ..ShardSpec::default()
        };
        // 11 positions -> 9 kept -> rank 1 gets 1,4,7 -> one full batch.
        assert_eq!(idx(&plan(&spec, 0..11)), vec![vec![1, 4]]);
    }

    #[test]
    fn workers_take_batches_round_robin_and_resume_skips() {
        let spec = |worker_id, consumed| ShardSpec {
            worker_id,
            num_workers: 2,
            batch_size: 2,
            consumed,
            ..ShardSpec::default()
        };
        assert_eq!(idx(&plan(&spec(0, 0), 0..7)), vec![vec![0, 1], vec![4, 5]]);
        assert_eq!(idx(&plan(&spec(1, 0), 0..7)), vec![vec![2, 3], vec![6]]);
        assert_eq!(idx(&plan(&spec(0, 3), 0..7)), vec![vec![3, 4]]);
        assert_eq!(idx(&plan(&spec(1, 3), 0..7)), vec![vec![5, 6]]);
    }

    #[test]
    fn permutations_are_pinned() {
        // The order for a seed must never change between releases: resumed jobs rely on it.
        assert_eq!(permutation(8, 42, 0), permutation(8, 42, 0));
        assert_ne!(permutation(32, 42, 0), permutation(32, 42, 1));
        assert_eq!(permutation(10, 7, 3), vec![2, 3, 6, 1, 8, 0, 9, 7, 5, 4]);
    }
}
