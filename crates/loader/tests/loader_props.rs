//! The async loader delivers exactly what the plan says, for random datasets and options:
//! in ordered mode batch for batch, out of order the same samples in the same number of
//! batches of the same sizes.

mod common;

use std::sync::Arc;

use common::{filled, tag};
use futures::StreamExt;
use proptest::prelude::*;
use s3dlio_loader::plan::{epoch_order, plan};
use s3dlio_loader::{Dataset, Loader, LoaderOptions, Remainder};
use s3dlio_store_core::ObjectStore;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn loader_delivers_the_plan(
        n in 0usize..60,
        world in 1usize..4,
        workers in 1usize..3,
        batch in 1usize..7,
        drop_last in any::<bool>(),
        remainder in prop_oneof![Just(Remainder::Pad), Just(Remainder::Drop), Just(Remainder::Uneven)],
        shuffle in any::<bool>(),
        ordered in any::<bool>(),
        seed in any::<u64>(),
        page in 1usize..20,
        consumed_cut in 0.0f64..0.5,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store: Arc<dyn ObjectStore> = Arc::new(filled("p/", n, |i| 8 + i % 5).await);
            for rank in 0..world {
                for worker_id in 0..workers {
                    let consumed = ((n / world) as f64 * consumed_cut) as u64;
                    let o = LoaderOptions {
                        batch_size: batch,
                        drop_last,
                        remainder,
                        shuffle,
                        ordered,
                        seed,
                        rank: Some(rank),
                        world_size: Some(world),
                        num_workers: workers,
                        worker_id,
                        max_in_flight: 4,
                        prefetch: 2,
                        ..LoaderOptions::default()
                    };
                    let spec = o.shard_spec(consumed).unwrap();
                    let want = plan(&spec, epoch_order(n as u64, shuffle, seed, 1));
                    let ds = Dataset::from_prefix(Arc::clone(&store), "p/").with_list_page_size(page);
                    let loader = Loader::new(ds, o).unwrap();
                    let mut s = loader.resume(1, consumed);
                    let mut got = Vec::new();
                    while let Some(b) = s.next().await {
                        let b = b.unwrap();
                        for x in &b.samples {
                            assert_eq!(tag(&x.data), x.index);
                        }
                        got.push(b.samples.iter().map(|x| (x.index, x.padding)).collect::<Vec<_>>());
                    }
                    let mut want: Vec<Vec<(u64, bool)>> = want
                        .into_iter()
                        .map(|b| b.items.into_iter().map(|p| (p.item, p.padding)).collect())
                        .collect();
                    if !ordered {
                        let sizes = |v: &Vec<Vec<(u64, bool)>>| v.iter().map(Vec::len).collect::<Vec<_>>();
                        assert_eq!(sizes(&got), sizes(&want));
                        let flat = |v: Vec<Vec<(u64, bool)>>| {
                            let mut f: Vec<_> = v.into_iter().flatten().collect();
                            f.sort_unstable();
                            f
                        };
                        got = vec![flat(got)];
                        want = vec![flat(want)];
                    }
                    assert_eq!(got, want);
                }
            }
        });
    }
}
