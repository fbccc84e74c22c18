//! Event-driven virtual time over real loopback sockets.
//!
//! Tests run on a current-thread tokio runtime with the clock paused, so protocol timeouts
//! (a handshake timeout of 10 s, "expect nothing for 500 ms") take no wall time: when every
//! task is idle, tokio jumps the clock to the next timer. Over real TCP that is racy: bytes
//! one task has written may still sit in the kernel (loopback delivery can be deferred to
//! a softirq under load), the runtime sees no ready task and no ready socket, and advances
//! the clock past a deadline the bytes would have met.
//!
//! [`Tracked`] closes that race. It wraps each end of a loopback connection and counts the
//! bytes (and the end-of-stream) written into the kernel and not yet read by the other end.
//! While anything is in flight towards a reader that is waiting for it, it keeps a `spawn_blocking` task alive, which on a
//! current-thread runtime stops the paused clock from auto-advancing; the task ends as soon
//! as the reader has caught up. Time therefore only moves when the whole system, kernel
//! buffers included, is idle: timeouts fire exactly when nothing else can happen.
//!
//! The wall-clock bound [`GUARD_LIMIT`] only matters when a reader never reads (a bug in
//! the test); then virtual time resumes after that long.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Longest wall-clock time one guard holds virtual time still.
pub const GUARD_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct LinkState {
    /// Bytes written in each direction (0: a→b, 1: b→a) and not yet read.
    in_flight: [u64; 2],
    /// An end-of-stream written in each direction and not yet seen by the reader.
    eof_in_flight: [bool; 2],
    /// The reading end of each direction is gone: nothing in flight there counts.
    reader_gone: [bool; 2],
    /// The reading end of each direction is waiting for data (its last read was pending).
    /// Bytes towards a reader that is not waiting cannot wake anything, so they do not
    /// hold time.
    reader_waiting: [bool; 2],
    guard_active: bool,
}

impl LinkState {
    fn busy(&self) -> bool {
        (0..2).any(|d| {
            self.reader_waiting[d]
                && !self.reader_gone[d]
                && (self.in_flight[d] > 0 || self.eof_in_flight[d])
        })
    }
}

/// The shared accounting of one connection.
#[derive(Debug, Default)]
struct Link {
    state: Mutex<LinkState>,
    drained: Condvar,
}

impl Link {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(self: &Arc<Self>, f: impl FnOnce(&mut LinkState)) {
        let mut st = self.lock();
        f(&mut st);
        if st.busy() {
            if !st.guard_active && tokio::runtime::Handle::try_current().is_ok() {
                st.guard_active = true;
                let link = Arc::clone(self);
                drop(st);
                // On a current-thread runtime with test-util, a running blocking task
                // inhibits the paused clock's auto-advance until it returns.
                tokio::task::spawn_blocking(move || link.hold_until_drained());
            }
        } else {
            self.drained.notify_all();
        }
    }

    fn hold_until_drained(&self) {
        let mut st = self.lock();
        let deadline = std::time::Instant::now() + GUARD_LIMIT;
        while st.busy() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .drained
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        st.guard_active = false;
    }
}

/// One end of a loopback connection whose in-flight bytes hold virtual time still.
#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    link: Arc<Link>,
    /// The direction this end writes (0 or 1); it reads the other one.
    out: usize,
}

impl<S> Tracked<S> {
    /// Wraps the two ends of one connection.
    pub fn pair(a: S, b: S) -> (Tracked<S>, Tracked<S>) {
        let link = Arc::new(Link::default());
        (
            Tracked {
                inner: a,
                link: Arc::clone(&link),
                out: 0,
            },
            Tracked {
                inner: b,
                link,
                out: 1,
            },
        )
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn incoming(&self) -> usize {
        1 - self.out
    }
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        let (out, inc) = (self.out, self.incoming());
        self.link.update(|st| {
            st.eof_in_flight[out] = true;
            st.reader_gone[inc] = true;
        });
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let inc = self.incoming();
        match &result {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                self.link.update(|st| {
                    st.reader_waiting[inc] = false;
                    if n == 0 {
                        st.eof_in_flight[inc] = false;
                        st.in_flight[inc] = 0;
                    } else {
                        st.in_flight[inc] = st.in_flight[inc].saturating_sub(n);
                    }
                });
            }
            Poll::Ready(Err(_)) => self.link.update(|st| st.reader_gone[inc] = true),
            Poll::Pending => self.link.update(|st| st.reader_waiting[inc] = true),
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            let (n, out) = (*n as u64, self.out);
            self.link.update(|st| st.in_flight[out] += n);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &result {
            let (n, out) = (*n as u64, self.out);
            self.link.update(|st| st.in_flight[out] += n);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        if let Poll::Ready(Ok(())) = &result {
            let out = self.out;
            self.link.update(|st| st.eof_in_flight[out] = true);
        }
        result
    }
}

/// Connects a loopback TCP pair through `listener`: `(client end, server end)`, both tracked.
pub async fn tracked_pair(
    listener: &TcpListener,
) -> io::Result<(Tracked<TcpStream>, Tracked<TcpStream>)> {
    let addr = listener.local_addr()?;
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, (server, _)) = (client?, accepted?);
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok(Tracked::pair(client, server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A timer that would expire "before" the bytes arrive must not fire first: the
    /// receive completes at virtual time zero however the kernel schedules delivery.
    #[tokio::test(start_paused = true)]
    async fn in_flight_bytes_hold_virtual_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..200 {
            let (mut a, mut b) = tracked_pair(&listener).await.unwrap();
            let start = tokio::time::Instant::now();
            a.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            tokio::time::timeout(Duration::from_millis(1), b.read_exact(&mut buf))
                .await
                .expect("virtual time advanced while bytes were in flight")
                .unwrap();
            assert_eq!(&buf, b"ping");
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
    }

    /// With nothing in flight, timers still fire at once in wall time.
    #[tokio::test(start_paused = true)]
    async fn idle_links_let_time_advance() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_a, mut b) = tracked_pair(&listener).await.unwrap();
        let wall = std::time::Instant::now();
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(3600), b.read(&mut buf)).await;
        assert!(r.is_err(), "nothing was sent, so the read times out");
        // Milliseconds when idle; the bound leaves room for a loaded CI machine and still
        // fails a run that waited out the hour (or any real part of it).
        assert!(
            wall.elapsed() < Duration::from_secs(60),
            "an hour of virtual time took no wall time"
        );
    }

    /// An end-of-stream in flight also holds time until the reader sees it.
    #[tokio::test(start_paused = true)]
    async fn eof_in_flight_holds_virtual_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..100 {
            let (a, mut b) = tracked_pair(&listener).await.unwrap();
            drop(a);
            let mut buf = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_millis(1), b.read(&mut buf))
                .await
                .expect("virtual time advanced while an EOF was in flight")
                .unwrap();
            assert_eq!(n, 0);
        }
    }
}
