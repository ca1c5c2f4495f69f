//! What the commands print.

use s3actions::pipeline::RunReport;
use s3actions::preview::MappingPreview;

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

pub fn print_run(r: &RunReport, json: bool) {
    if json {
        let v = serde_json::json!({
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
        });
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
