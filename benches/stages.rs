//! Per-stage costs on realistic events (from `../shared/bench/gen_events.py`, checked in as
//! `fixtures/events.ndjson`): JSON parsing, trigger evaluation, the default columns (general
//! evaluator and encoded rows), CSV field quoting, column hashing, and serve's normaliser.
//!
//! `cargo bench --bench stages`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use s3actions::encode::{ColumnTransform, Encoder, HashAlgorithm, Normalize, write_quoted};
use s3actions::expr::{Value, eval};
use s3actions::json::{NodeRef, Tape};
use s3actions::mapping::Config;
use s3actions::trigger::Trigger;

fn events() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/events.ndjson"),
    )
    .unwrap();
    text.lines().map(str::to_string).collect()
}

/// Every event parsed into its own tape, so that benchmarks measure only their stage.
fn parse_all<'a>(events: &'a [String], tapes: &'a mut [Tape]) -> Vec<NodeRef<'a>> {
    tapes
        .iter_mut()
        .zip(events)
        .map(|(t, e)| t.parse(e).unwrap())
        .collect()
}

fn default_mapping() -> Config {
    Config::from_str("mappings:\n  - name: events\n", Path::new("bench.yaml")).unwrap()
}

fn parse(c: &mut Criterion) {
    let events = events();
    let bytes: usize = events.iter().map(String::len).sum();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut tape = Tape::new();
    g.bench_function("tape (all fixture events)", |b| {
        b.iter(|| {
            for e in &events {
                black_box(tape.parse(e).unwrap());
            }
        })
    });
    g.finish();
}

fn triggers(c: &mut Criterion) {
    let events = events();
    let mut tapes: Vec<Tape> = events.iter().map(|_| Tape::new()).collect();
    let roots = parse_all(&events, &mut tapes);
    let mut g = c.benchmark_group("trigger");
    g.throughput(Throughput::Elements(events.len() as u64));
    for fql in [
        r#"type = "identify" or type = "track""#,
        r#"type = "track" and event = "Order Completed""#,
        r#"event = "Audience Entered" or event = "Audience Exited""#,
        r#"type = "track" and (properties.revenue > 100 or properties.is_gift = true)"#,
        r#"contains(event, "Order") and context.personas.computation_key != null"#,
    ] {
        let t = Trigger::parse(fql).unwrap();
        g.bench_function(fql, |b| {
            b.iter(|| roots.iter().filter(|r| t.matches(**r)).count())
        });
    }
    g.finish();
}

fn columns(c: &mut Criterion) {
    let events = events();
    let config = default_mapping();
    let m = &config.mappings[0];
    let mut tapes: Vec<Tape> = events.iter().map(|_| Tape::new()).collect();
    let roots = parse_all(&events, &mut tapes);
    let mut g = c.benchmark_group("columns");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("default columns, general evaluator", |b| {
        b.iter(|| {
            for r in &roots {
                for col in &m.row.columns {
                    black_box(eval(&col.expr, &Value::Node(*r)).unwrap());
                }
            }
        })
    });
    let mut encoder = Encoder::new();
    let format = s3actions::encode::format_for(m);
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("default columns, encoded CSV row", |b| {
        b.iter(|| {
            out.clear();
            for r in &roots {
                format
                    .encode_row(&mut encoder, &Value::Node(*r), &mut out)
                    .unwrap();
            }
            black_box(out.len())
        })
    });
    g.finish();
}

fn csv_quoting(c: &mut Criterion) {
    // Every string value of the fixture events, and the events themselves (long fields
    // full of quotes, like the JSON columns).
    let events = events();
    let mut fields: Vec<String> = Vec::new();
    let mut tape = Tape::new();
    for e in &events {
        let root = tape.parse(e).unwrap();
        for (_, v) in root.members() {
            if let Some(s) = v.as_str() {
                fields.push(s.into_owned());
            }
        }
        fields.push(e.clone());
    }
    let bytes: usize = fields.iter().map(String::len).sum();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut out = Vec::with_capacity(4 * bytes);
    g.bench_function("CSV field quoting", |b| {
        b.iter(|| {
            out.clear();
            for f in &fields {
                write_quoted(&mut out, f.as_bytes());
            }
            black_box(out.len())
        })
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let emails: Vec<String> = (0..1000)
        .map(|i| format!("  User.{i}@Example.COM "))
        .collect();
    let t = ColumnTransform {
        hash: HashAlgorithm::Sha256,
        normalize: Normalize::LowercaseTrim,
    };
    let mut g = c.benchmark_group("hashing");
    g.throughput(Throughput::Elements(emails.len() as u64));
    let mut out = String::new();
    g.bench_function("lowercase_trim + sha256", |b| {
        b.iter(|| {
            for e in &emails {
                t.apply(e, &mut out);
                black_box(&out);
            }
        })
    });
    g.finish();
}

/// serve's normaliser: a `/v1/batch` body of 100 fixture events with a batch `sentAt`
/// and `context` (parse once, merge, correct timestamps, write the lines).
fn serve_normalise(c: &mut Criterion) {
    use s3actions::source::http::{Arrival, normalise};
    let events = events();
    let body = format!(
        "{{\"batch\":[{}],\"sentAt\":\"2026-12-03T05:31:14.123Z\",\"context\":{{\"library\":{{\"name\":\"bench\"}}}}}}",
        events[..100].join(",")
    );
    let at = Arrival::from_unix_millis(1_796_275_874_123).unwrap();
    let mut g = c.benchmark_group("serve");
    g.throughput(Throughput::Elements(100));
    g.bench_function("normalise a /v1/batch of 100 events", |b| {
        b.iter(|| black_box(normalise("/v1/batch", body.as_bytes(), &at).unwrap()))
    });
    g.finish();
}

criterion_group!(
    benches,
    parse,
    triggers,
    columns,
    csv_quoting,
    hashing,
    serve_normalise
);
criterion_main!(benches);
