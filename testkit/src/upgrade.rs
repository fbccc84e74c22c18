//! The server side of the HTTP/1.1 WebSocket upgrade (RFC 6455 §4.2), written
//! by hand so that each in-process server decides what it answers: which
//! `Sec-WebSocket-Protocol` it echoes, and whether it answers at all.
//!
//! [`read_request`] reads and checks the request head (answering 400, 426 or
//! 431 itself when it is not a valid upgrade); [`accept`] writes
//! `101 Switching Protocols`. The bytes read past the head are the first
//! WebSocket bytes: [`Prefixed`] puts them back in front of the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The GUID appended to `Sec-WebSocket-Key` before hashing (RFC 6455 §1.3).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest HTTP request head (request line and headers) accepted.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// What the response needs from a valid upgrade request.
#[derive(Debug)]
pub(crate) struct UpgradeRequest {
    /// `Sec-WebSocket-Key`.
    pub(crate) key: String,
    /// The first value offered in `Sec-WebSocket-Protocol`, if any.
    pub(crate) protocol: Option<String>,
}

/// Reads the HTTP/1.1 upgrade request head and checks it. An invalid request
/// is answered with an error status and closed, and returned as `Err`.
/// Returns the request and the bytes read past its head.
pub(crate) async fn read_request(tcp: &mut TcpStream) -> Result<(UpgradeRequest, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() >= MAX_REQUEST_HEAD {
            reject(tcp, "431 Request Header Fields Too Large", "").await;
            return Err("request head too large".into());
        }
        let mut chunk = [0u8; 2048];
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the upgrade request: {e}"))?;
        if n == 0 {
            return Err("connection closed before the end of the request head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let leftover = buf.split_off(head_len);
    match parse_upgrade(&buf) {
        Ok(request) => Ok((request, leftover)),
        Err(Rejection::BadRequest(why)) => {
            reject(tcp, "400 Bad Request", "").await;
            Err(why)
        }
        Err(Rejection::Version) => {
            reject(tcp, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n").await;
            Err("unsupported Sec-WebSocket-Version".into())
        }
    }
}

/// Answers `101 Switching Protocols` to `request`, with
/// `Sec-WebSocket-Protocol: {protocol}` when `protocol` is `Some`.
pub(crate) async fn accept(
    tcp: &mut TcpStream,
    request: &UpgradeRequest,
    protocol: Option<&str>,
) -> Result<(), String> {
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(&request.key)
    );
    if let Some(protocol) = protocol {
        response.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    response.push_str("\r\n");
    tcp.write_all(response.as_bytes())
        .await
        .map_err(|e| format!("writing the upgrade response: {e}"))
}

/// Index just past the `\r\n\r\n` that ends the request head.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Answers a failed upgrade with `status` and closes.
async fn reject(tcp: &mut TcpStream, status: &str, extra_headers: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// Why an upgrade request was refused.
#[derive(Debug)]
enum Rejection {
    /// Not a WebSocket upgrade (status 400).
    BadRequest(String),
    /// `Sec-WebSocket-Version` other than 13 (status 426).
    Version,
}

/// Checks the RFC 6455 §4.2.1 requirements that matter here: `GET`,
/// HTTP/1.1 or later, `Upgrade: websocket`, `Connection: upgrade`, a key,
/// version 13. The request target is not checked.
fn parse_upgrade(head: &[u8]) -> Result<UpgradeRequest, Rejection> {
    let bad = |why: &str| Rejection::BadRequest(why.to_string());
    let head = std::str::from_utf8(head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, _target, version) = (parts.next(), parts.next(), parts.next());
    if method != Some("GET") {
        return Err(bad("method is not GET"));
    }
    if !matches!(version, Some(v) if v.starts_with("HTTP/1.") && v != "HTTP/1.0") {
        return Err(bad("not HTTP/1.1"));
    }

    let (mut upgrade, mut connection, mut ws_version) = (false, false, None);
    let (mut key, mut protocol) = (None, None);
    for line in lines.filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("malformed header line"));
        };
        let value = value.trim();
        let has_token = |token: &str| {
            value
                .split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= has_token("websocket"),
            "connection" => connection |= has_token("upgrade"),
            "sec-websocket-version" => ws_version = Some(value.to_string()),
            "sec-websocket-key" if key.is_none() => key = Some(value.to_string()),
            "sec-websocket-protocol" if protocol.is_none() => {
                protocol = value
                    .split(',')
                    .map(str::trim)
                    .find(|item| !item.is_empty())
                    .map(str::to_string);
            }
            _ => {}
        }
    }
    if !upgrade {
        return Err(bad("no Upgrade: websocket"));
    }
    if !connection {
        return Err(bad("no Connection: upgrade"));
    }
    let Some(key) = key.filter(|key| !key.is_empty()) else {
        return Err(bad("no Sec-WebSocket-Key"));
    };
    if ws_version.as_deref() != Some("13") {
        return Err(Rejection::Version);
    }
    Ok(UpgradeRequest { key, protocol })
}

/// `Sec-WebSocket-Accept`: base64(SHA-1(key + GUID)).
fn accept_key(key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

/// A socket with bytes already read from it put back in front: reads return
/// `prefix` first, then the socket's own bytes; writes go straight through.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Reads `prefix`, then `inner`.
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_a_browser_style_upgrade() {
        let head = b"GET /wisp/ HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\
                     upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n\
                     Sec-WebSocket-Key: abc==\r\nSec-WebSocket-Protocol: wisp-v2, other\r\n\r\n";
        let request = parse_upgrade(head).unwrap();
        assert_eq!(request.key, "abc==");
        assert_eq!(request.protocol.as_deref(), Some("wisp-v2"));
    }

    #[test]
    fn refuses_non_upgrades() {
        let plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            parse_upgrade(plain),
            Err(Rejection::BadRequest(_))
        ));
        let post = b"POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                     Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(matches!(parse_upgrade(post), Err(Rejection::BadRequest(_))));
        let old = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                    Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 8\r\n\r\n";
        assert!(matches!(parse_upgrade(old), Err(Rejection::Version)));
        assert!(matches!(
            parse_upgrade(b"\xff\r\n\r\n"),
            Err(Rejection::BadRequest(_))
        ));
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nxyz"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[tokio::test]
    async fn prefixed_reads_the_prefix_first() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut p = Prefixed::new(b"hello".to_vec(), b);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
