//! A real Kafka-protocol broker for one test: `tansu` (installed by scripts/test.sh), on a port
//! of its own with its own SQLite storage, so that tests run in parallel and one can stop and
//! restart its broker without disturbing the others. Plus a producer and a reader of topics.

use crate::support::free_port;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The tansu binary: `$TANSU`, else `tansu` from cargo's bin directory or the PATH.
fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU") {
        return p.into();
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let installed = home.join("bin/tansu");
    if installed.exists() {
        installed
    } else {
        "tansu".into()
    }
}

impl Broker {
    pub(crate) fn start() -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("broker dir"),
        };
        b.restart();
        b
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and storage, and waits until it accepts connections.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .unwrap();
        let child = Command::new(tansu())
            .arg("broker")
            .arg("--listener-url")
            .arg(self.url())
            .arg("--advertised-listener-url")
            .arg(self.url())
            // tansu reads the URL's path as relative: run it in its directory.
            .arg("--storage-engine")
            .arg("sqlite://tansu.db")
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the tansu broker ({}): {e}; scripts/test.sh installs it",
                    tansu().display()
                )
            });
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && start.elapsed() < Duration::from_secs(60),
                "tansu did not start listening ({exited:?}); its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker (its storage stays).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Copies the stopped broker's storage aside, to be put back by [`Broker::restore`].
    pub(crate) fn save_storage(&self, name: &str) {
        self.copy_storage(self.dir.path(), &self.dir.path().join(name));
    }

    /// Puts the storage saved as `name` back while the broker is stopped: the broker then
    /// forgets everything since, as a broker that lost data would (producer state included).
    pub(crate) fn restore_storage(&self, name: &str) {
        self.copy_storage(&self.dir.path().join(name), self.dir.path());
    }

    fn copy_storage(&self, from: &std::path::Path, to: &std::path::Path) {
        assert!(self.child.is_none(), "stop the broker first");
        std::fs::create_dir_all(to).unwrap();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let name = format!("tansu.db{suffix}");
            let _ = std::fs::remove_file(to.join(&name));
            if from.join(&name).exists() {
                std::fs::copy(from.join(&name), to.join(&name)).unwrap();
            }
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    pub(crate) fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu())
            .args(["topic", "create", "--broker"])
            .arg(self.url())
            .arg("--partitions")
            .arg(partitions.to_string())
            .arg(name)
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "cannot create topic {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn client(&self) -> ClientConfig {
        client(&self.addr())
    }

    /// Produces `(key, value)` records in order (keys decide partitions) and waits for them.
    pub(crate) fn produce(&self, topic: &str, records: &[(String, String)]) {
        Producer::new(&self.addr()).produce(topic, records);
    }

    /// How many records `topic` holds (0 while the broker cannot say).
    pub(crate) fn count(&self, topic: &str, partitions: u32) -> i64 {
        let Ok(consumer) = self.client().create::<BaseConsumer>() else {
            return 0;
        };
        (0..partitions as i32)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .map_or(0, |(lo, hi)| hi - lo)
            })
            .sum()
    }

    /// The offsets `group` committed for `topic`'s partitions (`None`: none committed).
    pub(crate) fn committed(&self, group: &str, topic: &str, partitions: u32) -> Vec<Option<i64>> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", group)
            .create()
            .expect("test consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        (0..partitions as i32)
            .map(|p| match committed.find_partition(topic, p)?.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// The end offset of one partition of `topic` (its high watermark).
    pub(crate) fn end_offset(&self, topic: &str, partition: i32) -> i64 {
        let consumer: BaseConsumer = self.client().create().expect("test consumer");
        consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks")
            .1
    }

    /// Every record of `topic` (all partitions, from the start), partition by partition,
    /// waiting until there are at least `at_least` (or the patience runs out).
    pub(crate) fn read_all(&self, topic: &str, partitions: u32, at_least: usize) -> Vec<Record> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", "weir-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("test consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let start = Instant::now();
        // Until the topic holds enough; then everything up to each partition's end as it is
        // now (duplicates included), however unevenly the partitions are fetched.
        while self.count(topic, partitions) < at_least as i64 {
            assert!(
                start.elapsed() < super::support::PATIENCE,
                "{topic} holds fewer than {at_least} records"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let end: Vec<i64> = (0..partitions as i32)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .collect();
        let mut next: Vec<i64> = vec![0; partitions as usize];
        let mut out: Vec<Record> = Vec::new();
        while next.iter().zip(&end).any(|(n, e)| n < e) {
            if start.elapsed() > super::support::PATIENCE {
                panic!(
                    "read {} records of {topic}, up to {next:?} of {end:?}",
                    out.len()
                );
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if let Some(n) = next.get_mut(m.partition() as usize) {
                        *n = m.offset() + 1;
                    }
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        value: String::from_utf8_lossy(m.payload().unwrap_or_default())
                            .into_owned(),
                        headers,
                    });
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }
}

fn client(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr);
    c
}

/// Test records into a topic, each with an `origin: test` header (to see headers carried).
pub(crate) struct Producer(BaseProducer);

impl Producer {
    pub(crate) fn new(addr: &str) -> Producer {
        Producer(
            client(addr)
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .expect("test producer"),
        )
    }

    /// Produces `(key, value)` records in order (keys decide partitions) and waits for them.
    pub(crate) fn produce(&self, topic: &str, records: &[(String, String)]) {
        self.produce_with(topic, records, None);
    }

    /// Like [`Producer::produce`], each record with the timestamp `millis` (as a mirror that
    /// keeps records' original times writes them).
    pub(crate) fn produce_at(&self, topic: &str, records: &[(String, String)], millis: i64) {
        self.produce_with(topic, records, Some(millis));
    }

    fn produce_with(&self, topic: &str, records: &[(String, String)], millis: Option<i64>) {
        for (key, value) in records {
            let mut record =
                BaseRecord::to(topic)
                    .key(key)
                    .payload(value)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "origin",
                        value: Some("test"),
                    }));
            if let Some(millis) = millis {
                record = record.timestamp(millis);
            }
            loop {
                match self.0.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        self.0.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        self.0
            .flush(Duration::from_secs(60))
            .expect("test records acknowledged");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: Vec<(String, String)>,
}
