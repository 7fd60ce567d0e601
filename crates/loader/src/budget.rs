//! The memory bound: bytes reserved for samples from before their request until their
//! batch is handed to the consumer.

use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    /// Bytes reserved by samples not yet delivered.
    used: u64,
    /// Samples reserved and not yet delivered (in flight, in the batch being formed, in
    /// prefetched batches).
    pending: usize,
    /// The most `used` ever was.
    peak: u64,
    /// The largest sample seen: the reservation for a sample of unknown size.
    largest: u64,
}

/// Reservations are taken one at a time in plan order. A reservation waits until it fits
/// under the limit, except when fewer than one batch of samples is pending: a batch must be
/// able to form, or nothing would ever be delivered and released.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    batch: usize,
    state: Mutex<State>,
    notify: Notify,
}

impl Budget {
    pub fn new(limit: u64, batch: usize) -> Self {
        Self {
            limit,
            batch,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What to reserve for a sample of unknown size: the largest seen so far, or before
    /// any was seen a batch's share of the limit (so the first batch alone may fill it).
    pub fn estimate(&self) -> u64 {
        match self.lock().largest {
            0 => (self.limit / self.batch.max(1) as u64).max(1),
            n => n,
        }
    }

    /// Reserve `n` bytes for one sample, waiting for room.
    pub async fn reserve(&self, n: u64) {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if s.pending < self.batch || s.used.saturating_add(n) <= self.limit {
                    s.used = s.used.saturating_add(n);
                    s.pending += 1;
                    s.peak = s.peak.max(s.used);
                    return;
                }
            }
            notified.await;
        }
    }

    /// A sample for which `reserved` bytes were set aside turned out to hold `actual`.
    pub fn settle(&self, reserved: u64, actual: u64) {
        let mut s = self.lock();
        s.largest = s.largest.max(actual);
        if actual >= reserved {
            s.used = s.used.saturating_add(actual - reserved);
            s.peak = s.peak.max(s.used);
        } else {
            s.used = s.used.saturating_sub(reserved - actual);
            drop(s);
            self.notify.notify_waiters();
        }
    }

    /// A batch of `samples` samples holding `bytes` was delivered.
    pub fn release(&self, bytes: u64, samples: usize) {
        let mut s = self.lock();
        s.used = s.used.saturating_sub(bytes);
        s.pending = s.pending.saturating_sub(samples);
        drop(s);
        self.notify.notify_waiters();
    }

    pub fn peak(&self) -> u64 {
        self.lock().peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn waits_for_room_but_always_lets_a_batch_form() {
        let b = Arc::new(Budget::new(100, 2));
        // Two samples always pass (one batch), even over the limit.
        b.reserve(80).await;
        b.reserve(80).await;
        assert_eq!(b.peak(), 160);
        // A third waits until a batch is delivered.
        let b2 = Arc::clone(&b);
        let waiter = tokio::spawn(async move { b2.reserve(50).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        b.release(160, 2);
        waiter.await.unwrap();
        // Unknown sizes: a batch's share first, then the largest seen; no overflow with
        // an unbounded limit.
        assert_eq!(b.estimate(), 50);
        b.settle(50, 70);
        assert_eq!(b.estimate(), 70);
        let open = Budget::new(u64::MAX, 4);
        for _ in 0..8 {
            open.reserve(open.estimate()).await;
        }
    }
}
