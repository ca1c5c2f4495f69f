//! Produces an NDJSON file to a Kafka topic, one line per message, round robin over the
//! topic's partitions (creating the topic first): the producer of `scripts/bench-kafka.sh`.
//!
//! ```sh
//! cargo run --release --example kafka_produce -- BROKERS TOPIC PARTITIONS FILE
//! ```
//!
//! Each message is its own record batch (`batch.num.messages=1`): tansu 0.6.0, the test
//! broker, reports a partition's end offset from the start of its last batch, so batches of
//! several messages would leave `--stop-at-end` short of the log. It waits until the
//! broker's end offsets show every message, then prints the rate.

use std::io::BufRead;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic, partitions, file] = args.as_slice() else {
        return Err("usage: kafka_produce BROKERS TOPIC PARTITIONS FILE".into());
    };
    let partitions: i32 = partitions.parse()?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for r in runtime.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))? {
        r.map_err(|(t, e)| format!("cannot create topic {t}: {e}"))?;
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let start = Instant::now();
    let mut sent = 0i64;
    for line in std::io::BufReader::new(std::fs::File::open(file)?).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut record = BaseRecord::<(), str>::to(topic)
            .partition((sent % i64::from(partitions)) as i32)
            .payload(line.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(format!("message {sent}: {e}").into()),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120))?;
    let produced = start.elapsed();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "kafka-produce-watermarks")
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut total = 0;
        for p in 0..partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            total += high - low;
        }
        if total >= sent {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the broker shows {total} of {sent} messages").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "produce: {sent} messages in {:.2} s ({:.0} messages/s)",
        produced.as_secs_f64(),
        sent as f64 / produced.as_secs_f64()
    );
    Ok(())
}
