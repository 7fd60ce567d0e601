//! Progress bars on long work when stderr is a terminal, and one summary line at the end.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::units::human_bytes;

/// Counts objects and bytes of one command and shows them.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    verb: &'static str,
    start: Instant,
    objects: AtomicU64,
    bytes: AtomicU64,
    total_objects: Option<u64>,
    by_objects: bool,
}

/// Whether progress bars are drawn (stderr is a terminal).
/// Library callers (the Python module) turn the summary lines off: their callers get
/// results, not text on stderr.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Turn progress bars and summary lines off (`true`) or on for the whole process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A one-line note on stderr (`created bucket ...`), unless [`set_quiet`] turned them off.
pub fn note(line: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{line}");
    }
}

pub fn interactive() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

impl Progress {
    /// Progress of a transfer measured in bytes (`total_bytes` when known up front).
    pub fn bytes(verb: &'static str, total_objects: Option<u64>, total_bytes: Option<u64>) -> Self {
        let bar = Self::bar(total_bytes);
        if let Ok(style) = ProgressStyle::with_template(if total_bytes.is_some() {
            "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
        } else {
            "{spinner} [{elapsed_precise}] {bytes} {binary_bytes_per_sec} {msg}"
        }) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self::with_bar(bar, verb, total_objects, false)
    }

    /// Progress measured in objects (deletes).
    pub fn objects(verb: &'static str, total_objects: Option<u64>) -> Self {
        let bar = Self::bar(total_objects);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} objects {per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self::with_bar(bar, verb, total_objects, true)
    }

    fn bar(len: Option<u64>) -> ProgressBar {
        let target = if interactive() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(len, target);
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    }

    fn with_bar(
        bar: ProgressBar,
        verb: &'static str,
        total: Option<u64>,
        by_objects: bool,
    ) -> Self {
        let p = Self {
            bar,
            verb,
            start: Instant::now(),
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total_objects: total,
            by_objects,
        };
        p.update_message();
        p
    }

    fn update_message(&self) {
        if self.by_objects {
            return;
        }
        let done = self.objects.load(Ordering::Relaxed);
        self.bar.set_message(match self.total_objects {
            Some(t) => format!("{done}/{t} objects"),
            None => format!("{done} objects"),
        });
    }

    /// Bytes moved.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if !self.by_objects {
            self.bar.inc(n);
        }
    }

    /// One object finished.
    pub fn object_done(&self) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        if self.by_objects {
            self.bar.inc(1);
        } else {
            self.update_message();
        }
    }

    pub fn objects_done(&self) -> u64 {
        self.objects.load(Ordering::Relaxed)
    }

    pub fn bytes_done(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Print text above the bar (or plainly when there is none).
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Stop the bar (its last state stays on screen) and print the summary line on stderr
    /// (unless [`set_quiet`] turned it off).
    pub fn finish(&self) {
        self.bar.finish();
        if !QUIET.load(Ordering::Relaxed) {
            eprintln!("{}", self.summary());
        }
    }

    /// `uploaded 12 objects, 3.0 MiB in 1.20 s (2.5 MiB/s)`.
    pub fn summary(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let objects = self.objects_done();
        let bytes = self.bytes_done();
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        let noun = if objects == 1 { "object" } else { "objects" };
        if self.by_objects {
            format!(
                "{} {objects} {noun} in {secs:.2} s ({:.0} objects/s)",
                self.verb,
                if secs > 0.0 {
                    objects as f64 / secs
                } else {
                    0.0
                }
            )
        } else {
            format!(
                "{} {objects} {noun}, {} in {secs:.2} s ({}/s)",
                self.verb,
                human_bytes(bytes),
                human_bytes(rate as u64)
            )
        }
    }
}
