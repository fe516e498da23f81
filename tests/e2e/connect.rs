//! What weir says when it cannot reach what a pipeline names: AWS credentials that are nowhere
//! (the start fails, naming where it looked, instead of "running" and retrying forever), and
//! `weir check --connect` against a real broker (tansu) and a real SQS server (moto).

use crate::kafka_broker::Broker;
use crate::sqs_server::SqsServer;
use crate::support::*;
use std::process::{Command, Output};

/// `weir` without any AWS credentials: no variables, a HOME without `~/.aws`, no instance
/// metadata (disabled, as on a machine that is not EC2).
fn without_credentials(s: &Scratch, mut cmd: Command) -> Command {
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", s.path("home"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

fn check_connect(s: &Scratch, pipeline: &std::path::Path) -> Command {
    let mut cmd = weir();
    cmd.args(["check", "--connect"])
        .arg(pipeline)
        .current_dir(s.dir.path());
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The reason a start without credentials must give: that there are none, and where the
/// chain looked (so the operator sees which place they meant to fill).
fn says_no_credentials(log: &str) {
    for needle in [
        "no AWS credentials found",
        "AWS_ACCESS_KEY_ID not set",
        "credentials (absent)",
        "disabled by AWS_EC2_METADATA_DISABLED",
    ] {
        assert!(log.contains(needle), "`{needle}` missing from:\n{log}");
    }
}

#[test]
fn missing_aws_credentials_fail_the_start_and_check_connect_clearly() {
    let server = SqsServer::start();
    let queue = server.create_queue("orders", &[]);
    let s = Scratch::new();
    std::fs::create_dir(s.path("home")).unwrap();
    let source = s.write(
        "source.toml",
        format!(
            "[pipeline]\nname = \"nocreds-in\"\n[source]\ntype = \"sqs\"\nqueue_url = {queue:?}\n\
             endpoint_url = {:?}\nwait_time_s = 1\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
            server.endpoint()
        ),
    );
    s.write("in.jsonl", order_lines(0..3));
    let sink = s.write(
        "sink.toml",
        format!(
            "[pipeline]\nname = \"nocreds-out\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [sink]\ntype = \"sqs\"\nqueue_url = {queue:?}\nendpoint_url = {:?}\n",
            server.endpoint()
        ),
    );
    for (pipeline, key) in [(&source, "source.queue_url"), (&sink, "sink.queue_url")] {
        // The start fails at once (it used to run, retrying every receive or the sink's open
        // without end), and says why.
        let child = without_credentials(&s, s.weir_run(pipeline))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (code, log) = wait_exit(child);
        assert_eq!(code, Some(1), "{log}");
        says_no_credentials(&log);

        // The offline check cannot know; `--connect` does, at the key that needs them.
        let offline = without_credentials(&s, {
            let mut c = weir();
            c.arg("check").arg(pipeline).current_dir(s.dir.path());
            c
        })
        .output()
        .unwrap();
        assert_eq!(offline.status.code(), Some(0), "{}", text(&offline));
        let out = without_credentials(&s, check_connect(&s, pipeline))
            .output()
            .unwrap();
        let report = text(&out);
        assert_eq!(out.status.code(), Some(1), "{report}");
        assert!(report.contains(key), "{report}");
        says_no_credentials(&report);
    }
    assert_eq!(server.count(&queue), 0, "nothing was sent");
}

#[test]
fn check_connect_reaches_brokers_topics_and_queues_and_names_what_is_missing() {
    let broker = Broker::start();
    broker.create_topic("in", 2);
    broker.create_topic("out", 1);
    let server = SqsServer::start();
    let dlq = server.create_queue("dlq", &[]);
    let s = Scratch::new();
    let pipeline = |name: &str, brokers: &str, topic: &str, dlq: &str| {
        s.write(
            &format!("{name}.toml"),
            format!(
                "[pipeline]\nname = {name:?}\n\
                 [source]\ntype = \"kafka\"\nbrokers = {brokers:?}\ntopics = {topic:?}\ngroup = \"g\"\n\
                 [sink]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"out\"\n\
                 [dlq]\ntype = \"sqs\"\nqueue_url = {dlq:?}\nendpoint_url = {endpoint:?}\n",
                addr = broker.addr(),
                endpoint = server.endpoint(),
            ),
        )
    };
    let good = pipeline("good", &broker.addr(), "in", &dlq);
    let out = check_connect(&s, &good).output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("`in` (2 partitions)"), "{report}");
    assert!(report.contains("`out` (1 partitions)"), "{report}");
    assert!(report.contains(&format!("sqs queue {dlq}")), "{report}");

    let missing_topic = pipeline("missing-topic", &broker.addr(), "nope", &dlq);
    let out = check_connect(&s, &missing_topic).output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("source.topics"), "{report}");
    assert!(
        report.contains("kafka topic `nope` does not exist"),
        "{report}"
    );

    let nobody = format!("127.0.0.1:{}", free_port());
    let unreachable = pipeline("unreachable", &nobody, "in", &dlq);
    let out = check_connect(&s, &unreachable).output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("source.brokers"), "{report}");
    assert!(
        report.contains(&format!("cannot reach the kafka brokers {nobody}")),
        "{report}"
    );

    let gone = dlq.replace("/dlq", "/no-such-queue");
    let missing_queue = pipeline("missing-queue", &broker.addr(), "in", &gone);
    let out = check_connect(&s, &missing_queue).output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("dlq.queue_url"), "{report}");
    assert!(report.contains("NonExistentQueue"), "{report}");
}
