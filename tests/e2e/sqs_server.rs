//! A real SQS-protocol server for one test: moto's `moto_server` (installed in a venv by
//! scripts/test.sh), on a port of its own, so that tests run in parallel with their own queues
//! and never need a reset. Plus a client to create queues, send and read messages.

use crate::support::free_port;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Dummy credentials and region: moto takes any. `weir()` gives every weir process the same.
pub(crate) const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// Numbers FIFO deduplication ids, so that no two messages sent by a test are taken as one.
static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) struct SqsServer {
    child: Child,
    pub port: u16,
    rt: tokio::runtime::Runtime,
    client: Client,
}

/// A message as read back from a queue.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub body: String,
    pub group: Option<String>,
    pub attributes: HashMap<String, String>,
    pub receive_count: u32,
}

/// `moto_server`: `$MOTO_SERVER`, else the venv scripts/test.sh makes, else the PATH.
fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return p.into();
    }
    let venv = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/weir/moto/bin/moto_server");
    if venv.exists() {
        venv
    } else {
        "moto_server".into()
    }
}

impl SqsServer {
    pub(crate) fn start() -> SqsServer {
        let port = free_port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server (scripts/test.sh installs it): {e}")
            });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build();
        let server = SqsServer {
            child,
            port,
            rt,
            client: Client::from_conf(conf),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a queue (a FIFO one if the name ends in `.fifo`) and returns its URL.
    pub(crate) fn create_queue(&self, name: &str, attributes: &[(&str, String)]) -> String {
        let mut call = self.client.create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            call = call.attributes(QueueAttributeName::FifoQueue, "true");
        }
        for (k, v) in attributes {
            call = call.attributes(QueueAttributeName::from(*k), v.clone());
        }
        let out = self.rt.block_on(call.send()).expect("create queue");
        out.queue_url.expect("queue url")
    }

    /// Some of a queue's attributes.
    fn attributes(
        &self,
        url: &str,
        names: &[QueueAttributeName],
    ) -> HashMap<QueueAttributeName, String> {
        let call = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()));
        let out = self.rt.block_on(call.send()).expect("queue attributes");
        out.attributes.unwrap_or_default()
    }

    /// A queue's ARN, for redrive policies.
    pub(crate) fn arn(&self, url: &str) -> String {
        self.attributes(url, &[QueueAttributeName::QueueArn])[&QueueAttributeName::QueueArn].clone()
    }

    /// Sends `(group, body)` messages in order, 10 per call, with a `origin = test` attribute.
    pub(crate) fn send(&self, url: &str, messages: &[(Option<String>, String)]) {
        let before = self.count(url);
        let fifo = url.ends_with(".fifo");
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (group, body))| {
                    let mut e = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .message_attributes(
                            "origin",
                            MessageAttributeValue::builder()
                                .data_type("String")
                                .string_value("test")
                                .build()
                                .unwrap(),
                        )
                        .set_message_group_id(group.clone());
                    if fifo {
                        let n = SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        e = e.message_deduplication_id(format!("test-{n}"));
                    }
                    e.build().unwrap()
                })
                .collect();
            let out = self
                .rt
                .block_on(
                    self.client
                        .send_message_batch()
                        .queue_url(url)
                        .set_entries(Some(entries))
                        .send(),
                )
                .expect("send");
            assert!(out.failed.is_empty(), "send failed: {:?}", out.failed);
        }
        // The client retries a call it thinks failed; one that had in fact landed would leave a
        // duplicate that the tests would blame on weir.
        assert_eq!(
            self.count(url),
            before + messages.len(),
            "the test's own sends were duplicated (a retried call had landed)"
        );
    }

    /// Messages in the queue, visible or not (moto counts exactly).
    pub(crate) fn count(&self, url: &str) -> usize {
        let names = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ];
        let a = self.attributes(url, &names);
        names
            .iter()
            .map(|k| a.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0))
            .sum()
    }

    /// Messages received and not yet deleted or visible again.
    pub(crate) fn not_visible(&self, url: &str) -> usize {
        let name = QueueAttributeName::ApproximateNumberOfMessagesNotVisible;
        let a = self.attributes(url, std::slice::from_ref(&name));
        a.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Receives and deletes everything visible in the queue, in the order the queue hands it
    /// out.
    pub(crate) fn drain(&self, url: &str) -> Vec<Msg> {
        let mut all = Vec::new();
        loop {
            let out = self
                .rt
                .block_on(
                    self.client
                        .receive_message()
                        .queue_url(url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(0)
                        .message_system_attribute_names(MessageSystemAttributeName::All)
                        .message_attribute_names("All")
                        .send(),
                )
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for m in messages {
                let system = m.attributes.clone().unwrap_or_default();
                let receipt = m.receipt_handle.clone().unwrap();
                all.push(Msg {
                    body: m.body.clone().unwrap_or_default(),
                    group: system
                        .get(&MessageSystemAttributeName::MessageGroupId)
                        .cloned(),
                    receive_count: system
                        .get(&MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0),
                    attributes: m
                        .message_attributes
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v.string_value?)))
                        .collect(),
                });
                self.rt
                    .block_on(
                        self.client
                            .delete_message()
                            .queue_url(url)
                            .receipt_handle(receipt)
                            .send(),
                    )
                    .expect("delete");
            }
        }
    }
}

impl Drop for SqsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
