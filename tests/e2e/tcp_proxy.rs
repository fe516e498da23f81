//! A TCP proxy a test controls, between weir and a server other tests share (Redis,
//! PostgreSQL): `cut()` drops every connection and refuses new ones, as if the server had gone
//! away, without stopping it for everyone; `restore()` lets connections through again.
//! `lose_replies(true)` throws away what the server sends while the connections stay up: bytes
//! lost in flight, which the server believes delivered; `lose_requests(true)` does the same to
//! what weir sends (acknowledgements weir believes sent). Neither should be turned off again
//! before a `cut()`: a stream resumed in the middle of a command is not the protocol.

use crate::api_server::Switchable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) struct TcpProxy {
    port: Switchable,
    connections: Arc<AtomicU64>,
    losing: Arc<AtomicBool>,
    losing_requests: Arc<AtomicBool>,
}

impl TcpProxy {
    /// A proxy on 127.0.0.1 (a free port) to `target`.
    pub(crate) fn start(target: SocketAddr) -> Self {
        let connections = Arc::new(AtomicU64::new(0));
        let losing = Arc::new(AtomicBool::new(false));
        let losing_requests = Arc::new(AtomicBool::new(false));
        let counted = connections.clone();
        let lose = losing.clone();
        let lose_up = losing_requests.clone();
        let port = Switchable::open("tcp proxy", move |client: TcpStream, mut closed| {
            counted.fetch_add(1, Ordering::SeqCst);
            let lose = lose.clone();
            let lose_up = lose_up.clone();
            async move {
                let Ok(server) = TcpStream::connect(target).await else {
                    return; // the client sees the connection closed
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_in, mut client_out) = client.into_split();
                let (mut server_in, mut server_out) = server.into_split();
                let up = forward(&mut client_in, &mut server_out, &lose_up);
                let down = forward(&mut server_in, &mut client_out, &lose);
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                    _ = closed.wait_for(|c| *c) => {}
                }
            }
        });
        TcpProxy {
            port,
            connections,
            losing,
            losing_requests,
        }
    }

    /// While on, what weir sends is read and thrown away (the connections stay up).
    pub(crate) fn lose_requests(&self, on: bool) {
        self.losing_requests.store(on, Ordering::SeqCst);
    }

    /// While on, what the server sends is read and thrown away (the connections stay up).
    pub(crate) fn lose_replies(&self, on: bool) {
        self.losing.store(on, Ordering::SeqCst);
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.port
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Drops every connection and refuses new ones; returns once the port is closed.
    pub(crate) fn cut(&self) {
        self.port.close();
    }

    /// Accepts and forwards connections again, on the same port.
    pub(crate) fn restore(&self) {
        self.port.reopen();
    }
}

/// Copies `from` to `to` until either end closes, throwing away what is read while `losing`.
async fn forward(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    losing: &AtomicBool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if !losing.load(Ordering::SeqCst) {
            to.write_all(&buf[..n]).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn ping(port: u16) -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        s.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn the_proxy_forwards_to_redis_cuts_and_restores_on_the_same_port() {
        let proxy = TcpProxy::start("127.0.0.1:6379".parse().unwrap());
        assert_eq!(ping(proxy.port()).unwrap(), "+PONG\r\n");
        // An open connection is dropped by the cut, and new ones are refused.
        let mut open = std::net::TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        proxy.cut();
        let mut buf = [0u8; 8];
        let _ = open.write_all(b"PING\r\n");
        assert!(matches!(open.read(&mut buf), Ok(0) | Err(_)));
        assert!(ping(proxy.port()).is_err(), "refused while cut");
        proxy.restore();
        assert_eq!(ping(proxy.port()).unwrap(), "+PONG\r\n");
        assert!(proxy.connections() >= 2);
    }
}
