//! Failures: the failing URI is named, bad samples can be skipped and counted, retries are
//! made for retryable errors only, timeouts are honoured.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{filled, key};
use futures::StreamExt;
use s3dlio_loader::{Dataset, Loader, LoaderOptions};
use s3dlio_store_core::{Error, ErrorKind, Fault, FaultStore, MemoryStore, ObjectStore, Operation};
use tokio::time::Instant;

fn opts(batch_size: usize) -> LoaderOptions {
    LoaderOptions {
        batch_size,
        rank: Some(0),
        world_size: Some(1),
        max_in_flight: 1,
        retry_backoff: Duration::from_millis(10),
        ..LoaderOptions::default()
    }
}

async fn one_key(faults: impl FnOnce(&FaultStore<MemoryStore>)) -> Arc<FaultStore<MemoryStore>> {
    let fs = Arc::new(FaultStore::new(filled("d/", 1, |_| 64).await));
    faults(&fs);
    fs
}

fn loader(fs: &Arc<FaultStore<MemoryStore>>, o: LoaderOptions) -> Loader {
    let store: Arc<dyn ObjectStore> = fs.clone();
    Loader::new(Dataset::from_keys(store, [key("d/", 0)]), o).unwrap()
}

/// The error reading the one key fails with, `kind` injected on GETs `1..=times`.
async fn failure(kind: ErrorKind, times: u64, o: LoaderOptions) -> (Error, u64) {
    let fs = one_key(|f| f.add_rule(Some(Operation::Get), 1, times, Fault::Fail(kind))).await;
    let err = loader(&fs, o).stream().next().await.unwrap().unwrap_err();
    (err, fs.calls(Operation::Get))
}

#[tokio::test]
async fn a_failing_sample_names_its_uri_and_ends_the_epoch() {
    let store: Arc<dyn ObjectStore> = Arc::new(filled("d/", 3, |_| 8).await);
    let keys = [key("d/", 0), "d/missing".to_owned(), key("d/", 2)];
    let l = Loader::new(Dataset::from_keys(store, keys), opts(1)).unwrap();
    let mut s = l.stream();
    assert_eq!(s.next().await.unwrap().unwrap().len(), 1);
    let err = s.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().starts_with("GET mem:///d/missing: "),
        "{err}"
    );
    assert!(s.next().await.is_none(), "the epoch ends at the error");
}

#[tokio::test]
async fn skip_errors_skips_counts_and_keeps_batch_counts() {
    let store: Arc<dyn ObjectStore> = Arc::new(filled("d/", 5, |_| 8).await);
    let keys = [
        key("d/", 0),
        "d/gone-1".to_owned(),
        key("d/", 2),
        "d/gone-2".to_owned(),
        key("d/", 4),
    ];
    for ordered in [true, false] {
        let o = LoaderOptions {
            skip_errors: true,
            ordered,
            ..opts(2)
        };
        let l = Loader::new(Dataset::from_keys(Arc::clone(&store), keys.clone()), o).unwrap();
        let mut s = l.stream();
        let mut batches = Vec::new();
        while let Some(b) = s.next().await {
            batches.push(b.unwrap());
        }
        // Three planned batches (2, 2, 1), still three: skipping never changes the count.
        assert_eq!(batches.len(), 3);
        let got: usize = batches.iter().map(|b| b.len()).sum();
        assert_eq!(got, 3);
        let skipped: Vec<&str> = batches
            .iter()
            .flat_map(|b| &b.skipped)
            .map(|x| x.uri.as_str())
            .collect();
        let mut skipped = skipped;
        skipped.sort_unstable();
        assert_eq!(skipped, vec!["mem:///d/gone-1", "mem:///d/gone-2"]);
        assert_eq!(s.stats().skipped, 2);
        assert_eq!(s.stats().samples, 3);
    }
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_with_backoff() {
    let fs = one_key(|f| {
        f.add_rule(
            Some(Operation::Get),
            1,
            2,
            Fault::Fail(ErrorKind::Interrupted),
        )
    })
    .await;
    let t = Instant::now();
    let mut s = loader(
        &fs,
        LoaderOptions {
            retries: 3,
            ..opts(1)
        },
    )
    .stream();
    assert_eq!(s.next().await.unwrap().unwrap().len(), 1);
    assert_eq!(s.stats().retries, 2);
    assert_eq!(fs.calls(Operation::Get), 3);
    // Backoff 10 ms then 20 ms, each with jitter down to half.
    assert!(
        t.elapsed() >= Duration::from_millis(15),
        "{:?}",
        t.elapsed()
    );

    // Retries spent: the last error, saying how many attempts were made.
    let o = LoaderOptions {
        retries: 2,
        ..opts(1)
    };
    let (err, calls) = failure(ErrorKind::RateLimited, 10, o).await;
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(
        err.to_string()
            .contains("mem:///d/000000: rate limited: after 3 attempts"),
        "{err}"
    );
    assert_eq!(calls, 3);
}

#[tokio::test(start_paused = true)]
async fn errors_that_are_not_retryable_are_not_retried() {
    let o = LoaderOptions {
        retries: 5,
        ..opts(1)
    };
    let (err, calls) = failure(ErrorKind::PermissionDenied, 1, o).await;
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(calls, 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_over_its_timeout_is_abandoned_and_retried() {
    let slow_first = |f: &FaultStore<MemoryStore>| {
        f.add_rule(
            Some(Operation::Get),
            1,
            1,
            Fault::Delay(Duration::from_secs(600)),
        )
    };
    let timeout = Some(Duration::from_secs(2));
    let fs = one_key(slow_first).await;
    let t = Instant::now();
    let o = LoaderOptions {
        request_timeout: timeout,
        retries: 1,
        ..opts(1)
    };
    let mut s = loader(&fs, o).stream();
    assert_eq!(s.next().await.unwrap().unwrap().len(), 1);
    assert_eq!(s.stats().retries, 1);
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // Without retries the timeout is the error, with the URI.
    let fs = one_key(slow_first).await;
    let o = LoaderOptions {
        request_timeout: timeout,
        retries: 0,
        ..opts(1)
    };
    let err = loader(&fs, o).stream().next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.to_string()
            .starts_with("GET mem:///d/000000: timed out"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn listing_pages_are_retried_too() {
    let fs = Arc::new(FaultStore::new(filled("d/", 30, |_| 8).await));
    fs.add_rule(
        Some(Operation::List),
        2,
        1,
        Fault::Fail(ErrorKind::Interrupted),
    );
    let ds = Dataset::from_prefix(fs.clone() as Arc<dyn ObjectStore>, "d/").with_list_page_size(10);
    let l = Loader::new(ds, opts(30)).unwrap();
    let mut s = l.stream();
    assert_eq!(s.next().await.unwrap().unwrap().len(), 30);
    assert_eq!(s.stats().retries, 1);
}

#[test]
fn options_that_cannot_work_are_refused() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let bad = [
        LoaderOptions {
            batch_size: 0,
            ..opts(1)
        },
        LoaderOptions {
            rank: Some(2),
            world_size: Some(2),
            ..opts(1)
        },
        LoaderOptions {
            num_workers: 2,
            worker_id: 2,
            ..opts(1)
        },
        LoaderOptions {
            prefetch: 0,
            ..opts(1)
        },
        LoaderOptions {
            max_in_flight: 0,
            ..opts(1)
        },
    ];
    for o in bad {
        let e = Loader::new(Dataset::from_prefix(Arc::clone(&store), ""), o.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{o:?}");
    }
}
