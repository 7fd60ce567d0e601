//! `s3-cli`, the s3dlio command line, as a library: the binary in `main.rs` only parses
//! arguments, sets up logging and a runtime, and calls [`commands::run`].
//!
//! * [`datagen`]: synthetic object data (seedable, distinct per object, honest dedup and
//!   compression ratios, raw / npz / tfrecord layouts), reusable by other facades.
//! * [`patterns`]: upload sources (files, directories, globs, regexes), remote key globs,
//!   `-p REGEX` key filters and the download path sanitiser.
//! * [`progress`]: progress bars on a terminal and the summary line.
//! * [`commands`]: what each subcommand does, over any backend the registry has.

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod args;
pub mod commands;
pub mod datagen;
#[cfg(feature = "fault-proxy")]
pub mod faultproxy;
pub mod patterns;
pub mod progress;
pub mod units;
