//! Load generator for `s3actions serve` (used by `scripts/bench-serve.sh`): posts
//! `/v1/batch` requests of `--batch` events from `--senders` concurrent keep-alive
//! connections over loopback, and reports acknowledged events per second and request
//! latency percentiles as one JSON object.
//!
//! ```sh
//! cargo run --release --example serve_load -- --addr 127.0.0.1:8088 --events events.ndjson
//! ```

use std::io::BufRead;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;

struct Args {
    addr: String,
    events: String,
    senders: usize,
    batch: usize,
    /// Times the whole event file is sent.
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:8088".into(),
        events: String::new(),
        senders: 4,
        batch: 100,
        rounds: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value()?,
            "--events" => a.events = value()?,
            "--senders" => a.senders = value()?.parse().map_err(|e| format!("--senders: {e}"))?,
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--rounds" => a.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.events.is_empty() {
        return Err("--events FILE (NDJSON) is required".into());
    }
    if a.senders == 0 || a.batch == 0 {
        return Err("--senders and --batch must be at least 1".into());
    }
    Ok(a)
}

/// The request bodies: `{"batch":[...],"sentAt":...}` of `batch` events each.
fn bodies(path: &str, batch: usize) -> std::io::Result<Vec<(Bytes, usize)>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    let mut body = String::new();
    let mut n = 0;
    let close = |body: &mut String, n: &mut usize, out: &mut Vec<(Bytes, usize)>| {
        body.push_str("],\"sentAt\":\"2026-12-03T05:31:14.123Z\"}");
        out.push((Bytes::from(std::mem::take(body)), *n));
        *n = 0;
    };
    for line in file.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        body.push_str(if n == 0 { "{\"batch\":[" } else { "," });
        body.push_str(&line);
        n += 1;
        if n == batch {
            close(&mut body, &mut n, &mut out);
        }
    }
    if n > 0 {
        close(&mut body, &mut n, &mut out);
    }
    Ok(out)
}

/// One sender: its share of the bodies over one keep-alive connection. Returns the events
/// acknowledged and each request's latency.
async fn sender(
    addr: String,
    work: Vec<(Bytes, usize)>,
) -> Result<(u64, Vec<Duration>), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut acked = 0;
    let mut latencies = Vec::with_capacity(work.len());
    for (body, events) in work {
        let req = Request::post("/v1/batch")
            .header("host", &addr)
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let started = Instant::now();
        send.ready().await?;
        let res = send.send_request(req).await?;
        let status = res.status();
        res.into_body().collect().await?;
        latencies.push(started.elapsed());
        if status != 200 {
            return Err(format!("status {status}").into());
        }
        acked += events as u64;
    }
    Ok((acked, latencies))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let bodies = match bodies(&args.events, args.batch) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", args.events);
            std::process::exit(2);
        }
    };
    // Round-robin shares, so every sender sends a mix.
    let mut shares: Vec<Vec<(Bytes, usize)>> = vec![Vec::new(); args.senders];
    let all = (0..args.rounds).flat_map(|_| bodies.iter().cloned());
    for (i, b) in all.enumerate() {
        shares[i % args.senders].push(b);
    }
    // One thread: the generator takes at most one core from the server it measures.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = shares
            .into_iter()
            .map(|work| tokio::spawn(sender(args.addr.clone(), work)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    let wall = started.elapsed().as_secs_f64();
    let mut acked = 0;
    let mut latencies = Vec::new();
    for r in results {
        match r {
            Ok(Ok((n, l))) => {
                acked += n;
                latencies.extend(l);
            }
            Ok(Err(e)) => {
                eprintln!("error: a sender failed: {e}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("error: a sender panicked: {e}");
                std::process::exit(1);
            }
        }
    }
    latencies.sort();
    let summary = serde_json::json!({
        "senders": args.senders,
        "batch": args.batch,
        "requests": latencies.len(),
        "events_acknowledged": acked,
        "seconds": wall,
        "events_per_second": acked as f64 / wall,
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
    });
    println!("{summary}");
}
