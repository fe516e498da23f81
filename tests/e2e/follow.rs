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
