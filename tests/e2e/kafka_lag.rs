//! The consumer lag the admin API shows (`/pipelines`' `lag_by_partition`, from librdkafka's
//! statistics) covers the partitions the process owns now: a rebalance that gives some away
//! takes them off the list.
//!
//! Real broker (tansu), two real `weir run` processes in one group.

use crate::kafka_broker::Broker;
use crate::support::*;
use std::collections::BTreeSet;

const PARTITIONS: u32 = 4;

/// Kafka `in` (group `lag`) -> file `out.jsonl`.
fn pipeline(broker: &Broker) -> String {
    format!(
        "[pipeline]\nname = \"lag\"\ncheckpoint_interval_ms = 100\n\
         [source]\ntype = \"kafka\"\nbrokers = {:?}\ntopics = \"in\"\ngroup = \"lag\"\nbatch_window_ms = 5\n\
         [source.properties]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
        broker.addr()
    )
}

/// Records on every partition (the lag of a partition nothing was read from is unknown).
fn records(from: usize) -> Vec<(String, String)> {
    (from..from + 40)
        .map(|i| (format!("K{}", i % 20), format!("{{\"i\":{i}}}")))
        .collect()
}

/// The partitions `lag_by_partition` lists for the process logging to `s`.
fn lag_partitions(s: &Scratch) -> BTreeSet<String> {
    let Some(admin) = admin_address(&s.log()) else {
        return BTreeSet::new();
    };
    let (_, body) = admin_get(&admin, "/pipelines/lag");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["lag_by_partition"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The partitions `s`'s log says were assigned (every assignment: cooperative rebalances
/// assign in steps).
fn assigned(s: &Scratch) -> BTreeSet<String> {
    const AT: &str = "kafka partitions assigned pipeline=\"lag\" partitions=";
    s.log()
        .split(AT)
        .skip(1)
        .flat_map(|rest| {
            let list = rest.split_whitespace().next().unwrap_or_default();
            list.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn lag_lists_only_the_partitions_still_owned_after_a_rebalance() {
    let broker = Broker::start();
    broker.create_topic("in", PARTITIONS);
    broker.produce("in", &records(0));
    let (a, b) = (Scratch::new(), Scratch::new());
    let all: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("in/{p}")).collect();

    // The first process owns every partition, and its lag says so.
    let first = a.spawn_logged(&a.write("k.toml", pipeline(&broker)));
    wait_logged(&a, "the first process's lag on every partition", || {
        lag_partitions(&a) == all
    });

    // The second joins and takes a share; the first gives it away.
    let second = b.spawn_logged(&b.write("k.toml", pipeline(&broker)));
    wait_logged(&a, "the first to give a share away", || {
        a.log().contains("kafka partitions revoked")
    });
    wait_logged(&b, "the second process to get the share", || {
        !assigned(&b).is_empty()
    });
    broker.produce("in", &records(40));
    let taken = assigned(&b);
    // The second's lag on its share: librdkafka's statistics ran since the rebalance (in both
    // processes: they run on the same interval).
    wait_logged(&b, "the second process's lag on its share", || {
        lag_partitions(&b) == taken
    });
    std::thread::sleep(std::time::Duration::from_secs(6));
    let kept: BTreeSet<String> = all.difference(&taken).cloned().collect();
    assert_eq!(
        lag_partitions(&a),
        kept,
        "the first process lists the partitions it kept, not those it gave away ({taken:?});\nlog:\n{}",
        a.log()
    );

    for (child, s) in [(second, &b), (first, &a)] {
        signal(&child, libc::SIGTERM);
        assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    }
}
