//! `follow = true`: tailing a growing, rotating file until SIGTERM, then resuming.

use crate::support::*;

fn seqs(s: &Scratch) -> Vec<u64> {
    json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn follows_growth_and_rotation_and_stops_gracefully() {
    let s = Scratch::new();
    s.write("app.log", order_lines(0..5));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"tail\"\n[source]\ntype = \"file\"\npath = \"app.log\"\nfollow = true\npoll_interval_ms = 10\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let child = s.spawn(&p);
    wait_for("the first lines", || seqs(&s).len() == 5);

    s.append("app.log", order_lines(5..8));
    // A line being written is not an event until its newline arrives.
    s.append("app.log", "{\"seq\":8,");
    wait_for("appended lines", || seqs(&s).len() == 8);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(seqs(&s).len(), 8, "a partial line was delivered");
    s.append("app.log", "\"x\":1}\n");
    wait_for("the completed line", || seqs(&s).len() == 9);

    // Rotation by rename; the writer gets one more line into the old file before reopening.
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
    s.append("app.log.1", order_lines(9..10));
    s.write("app.log", order_lines(10..13));
    wait_for("lines of the new file", || seqs(&s).len() == 13);

    signal(&child, libc::SIGTERM);
    let (code, err) = wait_exit(child);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("pipeline stopped"), "{err}");
    assert_eq!(seqs(&s), (0..13).collect::<Vec<_>>());

    // Restarted, it goes on after the checkpoint: nothing twice, nothing missed.
    let child = s.spawn(&p);
    s.append("app.log", order_lines(13..15));
    wait_for("lines after the restart", || seqs(&s).len() >= 15);
    signal(&child, libc::SIGINT);
    let (code, err) = wait_exit(child);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(seqs(&s), (0..15).collect::<Vec<_>>());
}

#[test]
fn finishes_a_file_rotated_while_stopped() {
    let s = Scratch::new();
    s.write("app.log", order_lines(0..3));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"rot\"\n[source]\ntype = \"file\"\npath = \"app.log\"\nfollow = true\npoll_interval_ms = 10\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let child = s.spawn(&p);
    wait_for("the first lines", || seqs(&s).len() == 3);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));

    // While weir is down, the file gets more lines and is rotated.
    s.append("app.log", order_lines(3..5));
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
    s.write("app.log", order_lines(5..7));

    let child = s.spawn(&p);
    wait_for("the rest of the rotated file and the new one", || {
        seqs(&s).len() >= 7
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert_eq!(seqs(&s), (0..7).collect::<Vec<_>>());
}

#[test]
fn start_at_end_skips_what_was_there_and_checkpoints_while_idle() {
    let s = Scratch::new();
    s.write("app.log", order_lines(0..100));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"fromend\"\ncheckpoint_interval_ms = 20\n[source]\ntype = \"file\"\npath = \"app.log\"\nfollow = true\n\
         start = \"end\"\npoll_interval_ms = 10\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let mut child = s.spawn(&p);
    // Lines appended after the start are read; the first one is numbered after the old ones.
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.append("app.log", order_lines(100..103));
    wait_for("new lines", || seqs(&s).len() == 3);
    assert_eq!(seqs(&s), vec![100, 101, 102]);
    let cp = s.state_dir().join("fromend/file-source.json");
    // The checkpoint follows while the file is idle: a SIGKILL now re-delivers nothing.
    wait_for("the idle checkpoint", || {
        std::fs::read_to_string(&cp).is_ok_and(|c| c.contains("\"line\":103"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let child = s.spawn(&p);
    s.append("app.log", order_lines(103..104));
    wait_for("the line after the restart", || seqs(&s).len() >= 4);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert_eq!(seqs(&s), vec![100, 101, 102, 103]);
}

fn follow_pipeline(s: &Scratch, name: &str, poll_ms: u64) -> std::path::PathBuf {
    s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"{name}\"\n[source]\ntype = \"file\"\npath = \"app.log\"\nfollow = true\n\
             poll_interval_ms = {poll_ms}\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n"
        ),
    )
}

/// Every seq exactly once, whatever the order.
fn assert_each_once(got: &[u64], n: u64) {
    let mut sorted = got.to_vec();
    sorted.sort_unstable();
    let missing: Vec<u64> = (0..n)
        .filter(|i| sorted.binary_search(i).is_err())
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "lost: {missing:?}... ({} of {n} delivered)",
        got.len()
    );
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "delivered twice");
}

/// logrotate's default scheme: app.log.N becomes app.log.N+1, app.log becomes app.log.1.
fn rotate_numbered(s: &Scratch, kept: usize) {
    for n in (1..=kept).rev() {
        let from = s.path(&format!("app.log.{n}"));
        if from.exists() {
            std::fs::rename(from, s.path(&format!("app.log.{}", n + 1))).unwrap();
        }
    }
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
}

#[test]
fn many_rotations_between_two_polls_lose_no_line() {
    let s = Scratch::new();
    s.write("app.log", order_lines(0..50));
    // A long poll: the writer rotates many times while weir sleeps.
    let p = follow_pipeline(&s, "rapid", 2000);
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first lines", || seqs(&s).len() == 50);
    let (rotations, per_file) = (20u64, 200u64);
    for r in 0..rotations {
        rotate_numbered(&s, r as usize + 1);
        let first = 50 + r * per_file;
        s.write("app.log", order_lines(first..first + per_file));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let n = 50 + rotations * per_file;
    wait_logged(&s, "every line of every rotated file", || {
        seqs(&s).len() as u64 >= n
    });
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    let got = seqs(&s);
    assert_each_once(&got, n);
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "files read oldest first");
}

#[test]
fn rotated_twice_while_stopped_reads_every_file_in_order() {
    let s = Scratch::new();
    // Rotated before weir first ran: not this stream's, never read.
    s.write("app.log-20261201", order_lines(1000..1003));
    s.write("app.log", order_lines(0..3));
    let p = follow_pipeline(&s, "twice", 10);
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first lines", || seqs(&s).len() == 3);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));

    // While weir is down: more lines, rotated away (dateext names), twice.
    s.append("app.log", order_lines(3..5));
    std::fs::rename(s.path("app.log"), s.path("app.log-20261205")).unwrap();
    s.write("app.log", order_lines(5..9));
    std::fs::rename(s.path("app.log"), s.path("app.log-20261206")).unwrap();
    s.write("app.log", order_lines(9..12));

    let child = s.spawn_logged(&p);
    wait_logged(&s, "the rotated files and the new one", || {
        seqs(&s).len() >= 12
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert_eq!(seqs(&s), (0..12).collect::<Vec<_>>());

    // And once more, numbered this time, with the checkpoint now written by this version.
    let child = s.spawn_logged(&p);
    wait_logged(&s, "restarted", || {
        s.log().matches("pipeline started").count() == 3
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    s.append("app.log", order_lines(12..13));
    rotate_numbered(&s, 0);
    s.write("app.log", order_lines(13..15));
    rotate_numbered(&s, 1);
    s.write("app.log", order_lines(15..16));
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the rotated files", || seqs(&s).len() >= 16);
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert_eq!(seqs(&s), (0..16).collect::<Vec<_>>());
}

#[test]
fn a_file_truncated_and_refilled_while_stopped_is_read_from_its_start() {
    let s = Scratch::new();
    s.write("app.log", order_lines(0..5));
    let p = follow_pipeline(&s, "refill", 10);
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first lines", || seqs(&s).len() == 5);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));

    // Truncated in place (same inode) and written past the old offset.
    s.write("app.log", order_lines(5..40));
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the new content", || seqs(&s).len() >= 40);
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert_eq!(seqs(&s), (0..40).collect::<Vec<_>>());
    assert!(
        s.log()
            .contains("file was truncated or written anew since the checkpoint"),
        "{}",
        s.log()
    );

    // copytruncate: copied aside, then truncated and written again. The lines the copy has
    // beyond the checkpoint are read from it, then the new content from its start.
    let child = s.spawn_logged(&p);
    wait_logged(&s, "restarted", || {
        s.log().matches("pipeline started").count() == 3
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    s.append("app.log", order_lines(40..43));
    std::fs::copy(s.path("app.log"), s.path("app.log.1")).unwrap();
    s.write("app.log", order_lines(43..80));
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the copy's rest and the new content", || {
        seqs(&s).len() >= 80
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert_eq!(seqs(&s), (0..80).collect::<Vec<_>>());
}

#[test]
fn a_rotated_file_deleted_before_it_is_read_is_reported_and_counted() {
    let s = Scratch::new();
    s.write("app.log", order_lines(0..3));
    let p = follow_pipeline(&s, "lost", 10);
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first lines", || seqs(&s).len() == 3);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));

    // Rotated and deleted while weir is down (`rotate 0`): its last lines cannot be read.
    s.append("app.log", order_lines(3..5));
    // (The new file first: created after the deletion, it could get the old one's inode.)
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
    s.write("app.log", order_lines(5..8));
    std::fs::remove_file(s.path("app.log.1")).unwrap();
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the new file", || seqs(&s).len() >= 6);
    let log = s.log();
    let warn = log
        .lines()
        .find(|l| l.contains("checkpointed file is gone"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(warn.contains("WARN") && warn.contains("app.log"), "{warn}");
    // This run's admin server: the log's last one.
    let this_run = &log[log.rfind("admin server listening").expect("admin address")..];
    let admin = admin_address(this_run).expect("admin address");
    let (_, metrics) = admin_get(&admin, "/metrics");
    assert!(
        metrics.contains("weir_file_rotations_lost_total{pipeline=\"lost\"} 1"),
        "{metrics}"
    );
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert_eq!(seqs(&s), [0, 1, 2, 5, 6, 7]);
}
