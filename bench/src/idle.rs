//! Stream-open rate and resident memory per open idle stream.
//!
//! Runs in a child process per client (the bench re-executes itself with `--idle-child`),
//! so that memory freed by earlier runs in the parent, which the allocator keeps and reuses,
//! cannot hide the cost being measured. The child starts the same runtimes and the same
//! server, connects, reads `VmRSS` from `/proc/self/status`, opens N streams one after the
//! other (each `new_stream` awaited), waits until the server has received all N CONNECTs,
//! and reads `VmRSS` again while every stream is still open and idle.
//!
//! The `raw` row is the baseline: a raw tokio-websockets connection that writes N CONNECT
//! packets with no client-side state at all, so its growth is what the in-process server
//! (its per-stream table) and the transport cost. Subtracting it gives the client's own cost.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_websockets::Message;

use crate::clients::{self, Kind, Target};
use crate::server::Server;
use crate::wire;

/// What one idle-streams child measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleResult {
    /// The client.
    pub client: String,
    /// Streams opened.
    pub streams: usize,
    /// Seconds from the first open call until the server had every CONNECT.
    pub open_secs: f64,
    /// VmRSS before opening, KiB.
    pub rss_before_kib: u64,
    /// VmRSS with every stream open, KiB.
    pub rss_after_kib: u64,
}

impl IdleResult {
    /// Streams opened per second.
    pub fn opens_per_sec(&self) -> f64 {
        self.streams as f64 / self.open_secs
    }

    /// Resident bytes per open stream (client, server and transport together).
    pub fn bytes_per_stream(&self) -> f64 {
        (self.rss_after_kib.saturating_sub(self.rss_before_kib) * 1024) as f64 / self.streams as f64
    }
}

/// VmRSS of this process in KiB.
pub fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the idle measurement for `kind` inside this process.
pub fn run_child(
    kind: Kind,
    streams: usize,
    runtimes: &crate::Runtimes,
    mode: crate::RuntimeMode,
) -> Result<IdleResult, String> {
    let server = runtimes
        .server_rt(mode)
        .block_on(Server::start(128))
        .map_err(|e| e.to_string())?;
    let target = Target {
        addr: server.addr(),
        token: format!("idle-{}", kind.name()),
        payload_len: 1024,
        ack_every: 0,
    };
    let registered = server.expect(&target.token);
    let client = runtimes.client.spawn(async move {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
        let task =
            tokio::spawn(
                async move { hold(kind, target, streams, ready_tx, go_rx, hold_rx).await },
            );
        (ready_rx, go_tx, hold_tx, task)
    });
    runtimes.main.block_on(async move {
        let (ready_rx, go_tx, hold_tx, task) = client.await.map_err(|e| e.to_string())?;
        let reg = tokio::time::timeout(Duration::from_secs(10), registered)
            .await
            .map_err(|_| "the server saw no connection".to_owned())?
            .map_err(|e| e.to_string())?;
        ready_rx
            .await
            .map_err(|_| "client failed to connect".to_owned())?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss_before_kib = vm_rss_kib();
        let t = Instant::now();
        let _ = go_tx.send(());
        let deadline = t + Duration::from_secs(120);
        while reg.stats.connects.load(Ordering::Relaxed) < streams as u64 {
            if Instant::now() > deadline || task.is_finished() {
                return Err(format!(
                    "only {} of {streams} CONNECTs arrived",
                    reg.stats.connects.load(Ordering::Relaxed)
                ));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let open_secs = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_after_kib = vm_rss_kib();
        // The child exits right after printing: no orderly shutdown to wait for.
        drop(hold_tx);
        drop(task);
        let errors = reg.stats.errors.load(Ordering::Relaxed);
        if errors > 0 {
            return Err(format!(
                "server saw {errors} errors: {:?}",
                reg.stats.error_log
            ));
        }
        Ok(IdleResult {
            client: kind.name().to_owned(),
            streams,
            open_secs,
            rss_before_kib,
            rss_after_kib,
        })
    })
}

/// Connects, signals `ready`, waits for `go`, opens `n` streams and holds them until `hold`.
async fn hold(
    kind: Kind,
    target: Target,
    n: usize,
    ready: tokio::sync::oneshot::Sender<()>,
    go: tokio::sync::oneshot::Receiver<()>,
    hold: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    match kind {
        Kind::Ours => {
            let (mux, driver) = clients::connect_ours(&target).await?;
            let _ = ready.send(());
            let _ = go.await;
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                held.push(
                    mux.new_stream(wisp_client::proto::StreamType::TCP, "idle.invalid", 9)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let _ = hold.await;
            drop(held);
            let _ = mux.close().await;
            drop(mux);
            let _ = tokio::time::timeout(Duration::from_secs(10), driver).await;
        }
        Kind::WispMux => {
            let (mux, actor) = clients::connect_wisp_mux(&target).await?;
            let _ = ready.send(());
            let _ = go.await;
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                held.push(
                    mux.client_new_stream(wisp_mux::StreamType::Tcp, "idle.invalid".into(), 9)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let _ = hold.await;
            drop(held);
            let _ = mux.close().await;
            drop(mux);
            let _ = tokio::time::timeout(Duration::from_secs(10), actor).await;
        }
        Kind::Raw | Kind::RawDefault | Kind::RawBest => {
            let mut ws = clients::tokio_ws(&target, "wisp", true).await?;
            let _ = ready.send(());
            let _ = go.await;
            for id in 1..=n as u32 {
                ws.feed(Message::binary(wire::connect_packet(id, "idle.invalid", 9)))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            ws.flush().await.map_err(|e| e.to_string())?;
            let _ = hold.await;
            let _ = tokio::time::timeout(Duration::from_secs(5), ws.close()).await;
        }
    }
    Ok(())
}
