//! `oplog stats FILE`: per-operation summaries of an op-log.

use s3dlio_metrics::{read_op_log, summarize, SummaryTable};

use super::{out, CliError, CliResult};
use crate::args::OplogCommand;
use crate::units::json_str;

pub fn run(c: &OplogCommand, json: bool) -> CliResult {
    match c {
        OplogCommand::Stats(a) => {
            let log = read_op_log(&a.file).map_err(|e| CliError(format!("oplog stats: {e}")))?;
            let stats = summarize(&log.rows);
            if json {
                for s in &stats {
                    let ns = |d: std::time::Duration| d.as_nanos().to_string();
                    out(&format!(
                        "{{\"op\":{},\"count\":{},\"errors\":{},\"objects\":{},\"bytes\":{},\
                         \"mean_ns\":{},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"max_ns\":{},\
                         \"ttfb_p50_ns\":{},\"span_ns\":{},\"ops_per_sec\":{:.3},\"bytes_per_sec\":{:.3}}}",
                        json_str(&s.op),
                        s.count,
                        s.errors,
                        s.objects,
                        s.bytes,
                        ns(s.mean),
                        ns(s.p50),
                        ns(s.p90),
                        ns(s.p99),
                        ns(s.max),
                        s.ttfb_p50.map_or("null".to_owned(), ns),
                        ns(s.span),
                        s.ops_per_sec(),
                        s.bytes_per_sec()
                    ))?;
                }
                return Ok(());
            }
            out(&format!(
                "{}: {} operations",
                a.file.display(),
                log.rows.len()
            ))?;
            out(SummaryTable(&stats).to_string().trim_end())?;
            for c in &log.comments {
                out(&format!("# {c}"))?;
            }
            Ok(())
        }
    }
}
