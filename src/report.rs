//! What the commands print.

use std::path::Path;

use s3actions::mapping::Config;
use s3actions::pipeline::RunReport;
use s3actions::preview::MappingPreview;
use s3actions::sink::SinkReport;
use s3actions::sink::s3::CheckResult;

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 0 when everything read was written or deliberately filtered; 1 when anything was
/// rejected or is waiting for upload.
pub fn exit_code(r: &RunReport) -> u8 {
    if r.rejected > 0 || r.failed_rows() > 0 || !r.sink.pending.is_empty() {
        1
    } else {
        0
    }
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The `--json` summary of a run.
pub fn run_json(r: &RunReport) -> serde_json::Value {
    serde_json::json!({
            "events_read": r.events_read,
            "matched": r.matched_events(),
            "not_matched": r.not_matched,
            "rejected": r.rejected,
            "failed_rows": r.failed_rows(),
            "rejects_file": (r.rejects_written > 0).then(|| r.rejects_path.as_ref().map(|p| p.display().to_string())).flatten(),
            "mappings": r.mappings.iter().map(|m| serde_json::json!({
                "name": m.name, "matched": m.matched, "rows": m.rows, "failed": m.failed,
            })).collect::<Vec<_>>(),
            "files": r.sink.delivered.iter().map(|f| serde_json::json!({
                "key": f.key, "location": f.location, "rows": f.rows, "bytes": f.bytes,
                "mapping": f.mapping, "event_type": f.event_type,
            })).collect::<Vec<_>>(),
            "pending": r.sink.pending.iter().map(|p| serde_json::json!({
                "key": p.key, "path": p.path.display().to_string(), "reason": p.reason,
            })).collect::<Vec<_>>(),
            "seconds": r.elapsed.as_secs_f64(),
            "peak_rss_mb": peak_rss_mb(),
    })
}

pub fn print_run(r: &RunReport, json: bool) {
    if json {
        let v = run_json(r);
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    println!(
        "Read {} events ({:.1} MB) in {:.2} s ({} events/s)",
        thousands(r.events_read),
        r.bytes_read as f64 / 1e6,
        secs,
        thousands((r.events_read as f64 / secs) as u64)
    );
    println!(
        "  matched by a mapping:       {}",
        thousands(r.matched_events())
    );
    println!("  not matched by any trigger: {}", thousands(r.not_matched));
    println!("  rejected (invalid input):   {}", thousands(r.rejected));
    for m in &r.mappings {
        if m.matched == 0 && m.rows == 0 && m.failed == 0 {
            println!("Mapping {:?}: no events matched", m.name);
            continue;
        }
        println!(
            "Mapping {:?}: {} matched, {} rows written, {} rejected",
            m.name,
            thousands(m.matched),
            thousands(m.rows),
            thousands(m.failed)
        );
    }
    if r.rejects_written > 0
        && let Some(p) = &r.rejects_path
    {
        println!(
            "{} rejected record(s) with reasons in {}",
            thousands(r.rejects_written),
            p.display()
        );
    }
    println!("Files written: {}", r.sink.delivered.len());
    for f in &r.sink.delivered {
        println!(
            "  {}  ({} rows, {} bytes)",
            f.location,
            thousands(f.rows),
            thousands(f.bytes)
        );
    }
    if !r.sink.pending.is_empty() {
        println!("Files waiting in the outbox: {}", r.sink.pending.len());
        for p in &r.sink.pending {
            println!("  {} -> {}: {}", p.path.display(), p.key, p.reason);
        }
    }
}

pub fn print_preview(previews: &[MappingPreview], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(previews).unwrap_or_default()
        );
        return;
    }
    for p in previews {
        let state = if p.enabled { "" } else { " (disabled)" };
        if !p.matched {
            println!(
                "mapping {:?}{state}: trigger did not match  [{}]",
                p.mapping, p.trigger
            );
            continue;
        }
        println!(
            "mapping {:?}{state}: trigger matched  [{}]",
            p.mapping, p.trigger
        );
        if let Some(key) = &p.key {
            println!("  key: {key}");
        }
        if let Some(e) = &p.error {
            println!("  error: {e}");
        }
        if let Some(w) = &p.warning {
            println!("  warning: {w}");
        }
        if let Some(row) = &p.row {
            let width = row
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0);
            for (k, v) in row {
                println!("  {k:width$} = {v}");
            }
        }
    }
}

/// After a failed run: which inputs are wholly in finished files, and how far into the
/// next one (so a re-run can start there).
/// `--json` for a run that failed or was refused: one object with `"error"` and, when the
/// run had started, which inputs (or bytes of one) are already in finished files.
pub fn print_failure(
    error: &str,
    reached: Option<(&s3actions::source::Durable, &[std::sync::Arc<str>])>,
) {
    let mut v = serde_json::json!({ "error": error.strip_prefix("error: ").unwrap_or(error) });
    if let Some((d, names)) = reached {
        v["inputs_done"] = names
            .iter()
            .take(d.inputs_done)
            .map(|n| serde_json::Value::from(&**n))
            .collect();
        v["durable_byte"] = match (d.byte, names.get(d.inputs_done)) {
            (Some(byte), Some(name)) => serde_json::json!({ "input": &**name, "byte": byte }),
            _ => serde_json::Value::Null,
        };
        v["peak_rss_mb"] = peak_rss_mb().into();
    }
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}

pub fn print_durable(d: &s3actions::source::Durable, names: &[std::sync::Arc<str>]) {
    if names.is_empty() {
        return;
    }
    let done: Vec<&str> = names.iter().take(d.inputs_done).map(|n| &**n).collect();
    if !done.is_empty() {
        eprintln!(
            "note: every event of {} is in finished files",
            done.join(", ")
        );
    }
    if let (Some(byte), Some(name)) = (d.byte, names.get(d.inputs_done)) {
        eprintln!("note: in {name}, every event before byte {byte} is in finished files");
    }
}

/// `check`'s lines; the exit code (0 when every folder took the object).
pub fn print_check(config: &Config, results: &[CheckResult]) -> u8 {
    let bucket = config.settings.bucket.clone().unwrap_or_default();
    let mut ok = true;
    for r in results {
        match &r.result {
            Ok(()) => println!("ok: mapping {:?}: wrote s3://{bucket}/{}", r.mapping, r.key),
            Err(e) => {
                ok = false;
                println!(
                    "FAILED: mapping {:?}: s3://{bucket}/{}: {e}",
                    r.mapping, r.key
                );
            }
        }
    }
    if let Some(role) = &config.settings.role_arn {
        let state = if ok {
            "connection works,"
        } else {
            "connection check failed,"
        };
        println!("{state} assuming {role}");
    }
    if ok { 0 } else { 1 }
}

/// `flush`'s lines; the exit code (0 when nothing is left waiting).
pub fn print_flush(report: &SinkReport, outbox: &Path) -> u8 {
    for d in &report.delivered {
        println!("uploaded {}", d.location);
    }
    for p in &report.pending {
        println!(
            "still waiting: {} ({}): {}",
            p.key,
            p.path.display(),
            p.reason
        );
    }
    println!(
        "{} file(s) uploaded, {} still waiting in {}",
        report.delivered.len(),
        report.pending.len(),
        outbox.display()
    );
    if report.pending.is_empty() { 0 } else { 1 }
}

/// `validate`'s summary line.
pub fn print_valid(config: &Config) {
    let n = config.mappings.len();
    let enabled = config.mappings.iter().filter(|m| m.enabled).count();
    let warnings = match config.warnings.len() {
        0 => String::new(),
        1 => ", 1 warning".to_string(),
        w => format!(", {w} warnings"),
    };
    println!(
        "{}: valid ({n} mapping{}, {enabled} enabled{warnings})",
        config.path.display(),
        if n == 1 { "" } else { "s" },
    );
}

/// `retl`'s summary: each model's differences, then the run's.
pub fn print_retl(done: &s3actions::commands::Retled, json: bool) -> serde_json::Result<()> {
    for m in &done.models {
        for w in &m.warnings {
            eprintln!("warning: {w}");
        }
    }
    if json {
        let mut summary = run_json(&done.replayed.report);
        summary["models"] = serde_json::to_value(&done.models)?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    for m in &done.models {
        println!(
            "Model {:?}: {} rows; {} new, {} updated, {} deleted",
            m.model, m.rows, m.new, m.updated, m.deleted
        );
    }
    print_run(&done.replayed.report, false);
    println!("Snapshots committed in {}", done.state_dir.display());
    Ok(())
}
