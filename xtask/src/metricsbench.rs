//! `cargo xtask bench metrics`: what the observability layers (metrics, op-log) add to a
//! small-object GET loop. The measuring is `crates/metrics/examples/overhead.rs`; this
//! builds and runs it and takes its report (Markdown lines, then one JSON line per
//! measurement).

use std::process::Command;

use crate::bench::{build_example, Options};

pub fn metrics_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<(), String> {
    let exe = build_example(opts, "s3dlio-metrics", &[], "overhead")?;
    let mut c = Command::new(&exe);
    if opts.quick {
        c.arg("--quick");
    }
    eprintln!("xtask: running {}", exe.display());
    let out = c.output().map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with('{') {
            json.push(line.to_owned());
        } else {
            report.push_str(line);
            report.push('\n');
        }
    }
    report.push('\n');
    Ok(())
}
