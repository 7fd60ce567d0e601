//! Property tests of the sharding, shuffling and resume rules (`s3dlio_loader::plan`), the
//! same code the async loader runs, over random dataset sizes, world sizes, workers, batch
//! sizes, drop_last and remainder modes.

use std::collections::HashMap;

use proptest::prelude::*;
use s3dlio_loader::plan::{epoch_order, permutation, plan, PlannedBatch};
use s3dlio_loader::{Remainder, ShardSpec};

#[derive(Debug, Clone)]
struct Case {
    n: u64,
    world: usize,
    workers: usize,
    batch: usize,
    drop_last: bool,
    remainder: Remainder,
    shuffle: bool,
    seed: u64,
    epoch: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0u64..300,
        1usize..7,
        1usize..5,
        1usize..11,
        any::<bool>(),
        prop_oneof![
            Just(Remainder::Pad),
            Just(Remainder::Drop),
            Just(Remainder::Uneven)
        ],
        any::<bool>(),
        any::<u64>(),
        0u64..4,
    )
        .prop_map(
            |(n, world, workers, batch, drop_last, remainder, shuffle, seed, epoch)| Case {
                n,
                world,
                workers,
                batch,
                drop_last,
                remainder,
                shuffle,
                seed,
                epoch,
            },
        )
}

impl Case {
    fn spec(&self, rank: usize, worker_id: usize, consumed: u64) -> ShardSpec {
        ShardSpec {
            rank,
            world_size: self.world,
            worker_id,
            num_workers: self.workers,
            batch_size: self.batch,
            drop_last: self.drop_last,
            remainder: self.remainder,
            consumed,
        }
    }

    fn order(&self) -> Vec<u64> {
        epoch_order(self.n, self.shuffle, self.seed, self.epoch)
    }

    fn worker_plans(&self, rank: usize, consumed: u64) -> Vec<Vec<PlannedBatch<u64>>> {
        (0..self.workers)
            .map(|w| plan(&self.spec(rank, w, consumed), self.order()))
            .collect()
    }

    /// The rank's batches as a consumer reading its workers round-robin sees them.
    fn rank_batches(&self, rank: usize, consumed: u64) -> Vec<Vec<(u64, bool)>> {
        let plans = self.worker_plans(rank, consumed);
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let mut any = false;
            for p in &plans {
                if let Some(b) = p.get(i) {
                    any = true;
                    out.push(b.items.iter().map(|x| (x.item, x.padding)).collect());
                }
            }
            if !any {
                return out;
            }
            i += 1;
        }
    }

    /// Reference: the rank's sample sequence, written independently of the sharder.
    fn reference(&self, rank: usize, consumed: u64) -> Vec<(u64, bool)> {
        let (n, r) = (self.n, self.world as u64);
        let order = self.order();
        let positions: Vec<(u64, bool)> = match self.remainder {
            Remainder::Uneven => order.iter().map(|&i| (i, false)).collect(),
            Remainder::Drop => order[..((n / r) * r) as usize]
                .iter()
                .map(|&i| (i, false))
                .collect(),
            Remainder::Pad => {
                let total = if n == 0 { 0 } else { n.div_ceil(r) * r };
                (0..total)
                    .map(|p| {
                        if p < n {
                            (order[p as usize], false)
                        } else {
                            (order[((p - n) % n) as usize], true)
                        }
                    })
                    .collect()
            }
        };
        let mine: Vec<(u64, bool)> = positions
            .into_iter()
            .enumerate()
            .filter(|(p, _)| *p as u64 % r == rank as u64)
            .map(|(_, x)| x)
            .skip(consumed as usize)
            .collect();
        let keep = if self.drop_last {
            mine.len() / self.batch * self.batch
        } else {
            mine.len()
        };
        mine[..keep].to_vec()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Each rank's batches, read round-robin over its workers, are exactly the reference
    /// sequence, cut in batches of `batch_size` (only the last may be short).
    #[test]
    fn rank_sequence_matches_reference(c in case()) {
        for rank in 0..c.world {
            let batches = c.rank_batches(rank, 0);
            for b in batches.iter().rev().skip(1) {
                prop_assert_eq!(b.len(), c.batch);
            }
            if let Some(last) = batches.last() {
                prop_assert!(!last.is_empty() && last.len() <= c.batch);
                if c.drop_last {
                    prop_assert_eq!(last.len(), c.batch);
                }
            }
            let flat: Vec<_> = batches.into_iter().flatten().collect();
            prop_assert_eq!(flat, c.reference(rank, 0));
        }
    }

    /// Every sample exactly once per epoch across ranks x workers (not counting padding),
    /// unless the options drop some: then at most once, and exactly the dropped count is
    /// missing.
    #[test]
    fn coverage_exactly_once(c in case()) {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut padding = 0u64;
        let mut per_rank = Vec::new();
        for rank in 0..c.world {
            let mut count = 0u64;
            for p in c.worker_plans(rank, 0) {
                for b in p {
                    for x in b.items {
                        count += 1;
                        if x.padding {
                            padding += 1;
                        } else {
                            *seen.entry(x.item).or_default() += 1;
                        }
                    }
                }
            }
            per_rank.push(count);
        }
        prop_assert!(seen.values().all(|&k| k == 1), "a sample was read twice");
        prop_assert!(seen.keys().all(|&i| i < c.n));
        let r = c.world as u64;
        let drops_nothing = !c.drop_last && c.remainder != Remainder::Drop;
        if drops_nothing {
            prop_assert_eq!(seen.len() as u64, c.n, "every sample read");
        }
        if !c.drop_last {
            let expected_pad = match c.remainder {
                Remainder::Pad if c.n > 0 => c.n.div_ceil(r) * r - c.n,
                _ => 0,
            };
            prop_assert_eq!(padding, expected_pad);
            if c.remainder == Remainder::Drop {
                prop_assert_eq!(seen.len() as u64, c.n / r * r);
            }
        }
        prop_assert_eq!(per_rank.iter().sum::<u64>(), seen.len() as u64 + padding);
    }

    /// With Pad or Drop every rank gets the same number of batches (so DDP never hangs),
    /// with and without drop_last; Uneven differs by at most one.
    #[test]
    fn equal_batch_counts_per_rank(c in case()) {
        let counts: Vec<usize> = (0..c.world)
            .map(|rank| c.worker_plans(rank, 0).iter().map(Vec::len).sum())
            .collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        if c.remainder == Remainder::Uneven {
            prop_assert!(max - min <= 1, "{:?}", counts);
        } else {
            prop_assert_eq!(min, max, "{:?}", counts);
        }
    }

    /// The same seed and epoch give the same plan; the order is a permutation; other
    /// epochs and other seeds give other orders.
    #[test]
    fn shuffle_is_deterministic_by_seed_and_epoch(c in case(), n in 20u64..500) {
        let a = permutation(n, c.seed, c.epoch);
        prop_assert_eq!(&a, &permutation(n, c.seed, c.epoch));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        prop_assert_ne!(&a, &permutation(n, c.seed, c.epoch + 1));
        prop_assert_ne!(&a, &permutation(n, c.seed.wrapping_add(1), c.epoch));
        for rank in 0..c.world {
            prop_assert_eq!(c.rank_batches(rank, 0), c.rank_batches(rank, 0));
        }
    }

    /// Resuming from `consumed` samples yields exactly the rest of the rank's sequence
    /// (with drop_last, from batch boundaries, where checkpoints are taken).
    #[test]
    fn resume_yields_the_remaining_sequence(c in case(), cut in 0.0f64..=1.0) {
        for rank in 0..c.world {
            let full: Vec<_> = c.rank_batches(rank, 0).into_iter().flatten().collect();
            let mut k = (full.len() as f64 * cut) as u64;
            if c.drop_last {
                k = k / c.batch as u64 * c.batch as u64;
            }
            let rest: Vec<_> = c.rank_batches(rank, k).into_iter().flatten().collect();
            prop_assert_eq!(&rest[..], &full[k as usize..]);
        }
    }
}
