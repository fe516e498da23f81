//! SIGKILL at any moment loses nothing: after restarts, every input line is in the output, in
//! order, with repeats only where a restart re-read lines after the last checkpoint.

use crate::support::*;

const LINES: u64 = 200_000;

#[test]
fn sigkill_and_restart_lose_no_line() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..LINES));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"crashy\"\ncheckpoint_interval_ms = 5\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nbatch_size = 100\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let out = s.path("out.jsonl");
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);

    let mut kills = 0;
    for round in 0..20u64 {
        let mut child = s.spawn(&p);
        let before = size(&out);
        // Let it make some progress (a little more each round), then kill it mid-stream.
        wait_for("progress", || {
            size(&out) > before + round * 20_000 || child.try_wait().unwrap().is_some()
        });
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let done = s.run(&p);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert!(
        kills >= 3,
        "the run finished before it could be killed often enough ({kills} kills)"
    );

    // Every line, in order: the sequence never skips ahead, it only steps back after a restart.
    // A write torn by SIGKILL leaves a fragment of a line that is written again in full later.
    let expected = order_lines(0..LINES);
    let mut seen = vec![false; LINES as usize];
    let (mut prev, mut fragments) = (None::<u64>, 0);
    for line in lines(&out) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            assert!(
                expected.contains(&line),
                "not a fragment of an input line: {line:?}"
            );
            fragments += 1;
            continue;
        };
        let seq = v["seq"].as_u64().unwrap();
        match prev {
            None => assert_eq!(seq, 0, "output starts at the first line"),
            Some(p) => assert!(seq <= p + 1, "skipped from {p} to {seq}: lines lost"),
        }
        seen[seq as usize] = true;
        prev = Some(seq);
    }
    assert!(
        fragments <= kills,
        "{fragments} torn lines for {kills} kills"
    );
    let missing: Vec<usize> = (0..LINES as usize).filter(|&i| !seen[i]).take(10).collect();
    assert!(missing.is_empty(), "lines lost: {missing:?}");
    assert_eq!(prev, Some(LINES - 1));
}
