//! Just enough of the Redis protocol to set up and clean up test data on the shared Redis
//! (127.0.0.1:6379): one command per connection, the reply as text. Self-contained: the
//! enrichment benchmark includes it too.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

pub(crate) const REDIS: &str = "127.0.0.1:6379";

/// One reply: a simple string, error, integer or bulk string as text (`None` for nil), an
/// array as its elements.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    Text(Option<String>),
    Array(Vec<Reply>),
}

/// Runs one command on the shared Redis.
pub(crate) fn redis(args: &[&str]) -> Reply {
    let mut conn = TcpStream::connect(REDIS).expect("Redis at 127.0.0.1:6379 (scripts/test.sh)");
    redis_on(&mut conn, args)
}

/// Runs one command on a connection, reading its reply.
pub(crate) fn redis_on(conn: &mut TcpStream, args: &[&str]) -> Reply {
    let mut cmd = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        cmd.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        cmd.extend_from_slice(a.as_bytes());
        cmd.extend_from_slice(b"\r\n");
    }
    conn.write_all(&cmd).expect("write to Redis");
    read_reply(&mut BufReader::new(conn))
}

fn read_reply(r: &mut impl BufRead) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).expect("read from Redis");
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => Reply::Text(Some(rest.to_owned())),
        "-" => panic!("Redis said {rest}"),
        "$" => {
            let n: i64 = rest.parse().expect("a length");
            if n < 0 {
                return Reply::Text(None);
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).expect("read a bulk string");
            buf.truncate(n as usize);
            Reply::Text(Some(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let n: i64 = rest.parse().expect("a count");
            Reply::Array((0..n.max(0)).map(|_| read_reply(r)).collect())
        }
        _ => panic!("unexpected reply from Redis: {line}"),
    }
}

/// Deletes every key under `prefix` (a test's own).
pub(crate) fn redis_clear(prefix: &str) {
    let Reply::Array(keys) = redis(&["KEYS", &format!("{prefix}*")]) else {
        return;
    };
    for k in keys {
        if let Reply::Text(Some(k)) = k {
            redis(&["DEL", &k]);
        }
    }
}
