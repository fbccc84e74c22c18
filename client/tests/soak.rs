//! Soak tests through a real server (ignored by default: `bash scripts/test.sh --soak`, or
//! `cargo test --release -p wisp-client --test soak -- --ignored --nocapture`).
//!
//! - 1,000 TCP streams over one connection to the pinned wisp-js 0.5.0 server, each moving
//!   1 MiB to a loopback echo and back, byte-exact, under 60 s; once every stream has closed
//!   (and the echo has closed its side), the heap bytes in use are within 2x of what they were
//!   before the first stream opened.
//! - 10,000 open/close cycles on one connection: no stream id, stream entry or task is leaked
//!   (the mux tracks no stream afterwards and the runtime has as many live tasks as before).

use std::alloc::System;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cap::Cap;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use wisp_client::proto::{CloseReason, StreamType};
use wisp_client::{ClientMux, MuxOptions, WispError};
use wisp_testkit::{RealServer, ServerKind, TcpEcho};

/// Streams in the throughput soak.
const STREAMS: usize = 1_000;
/// Bytes each stream sends and receives back.
const PER_STREAM: usize = 1024 * 1024;
/// The throughput soak must finish within this.
const SOAK_BOUND: Duration = Duration::from_secs(60);
/// Open/close cycles in the leak soak.
const CYCLES: u32 = 10_000;

/// Counts the heap bytes in use: what the allocator holds for the program, not what the C
/// allocator keeps cached for later (which resident memory would also count).
#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// The two soaks measure process-wide figures: they never run at the same time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run(test: impl Future<Output = ()>) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(test);
}

/// The byte at offset `i` of stream `n`'s payload: differs per stream and per offset, so a
/// byte delivered to the wrong stream or at the wrong place is seen.
fn pattern(n: usize, i: usize) -> u8 {
    ((i.wrapping_mul(31)) ^ n.wrapping_mul(7919) ^ (i >> 12)) as u8
}

async fn connect(
    server: &RealServer,
) -> (ClientMux, tokio::task::JoinHandle<Result<(), WispError>>) {
    let (mux, driver) = ClientMux::connect(&server.url(), None, MuxOptions::default())
        .await
        .unwrap_or_else(|e| panic!("handshake with wisp-js failed: {e}\n{}", server.log_tail()))
        .with_no_required_extensions();
    (mux, tokio::spawn(driver))
}

#[test]
#[ignore = "soak: run with --ignored (scripts/test.sh --soak)"]
fn thousand_streams_one_mib_each_through_wisp_js() {
    run(thousand_streams());
}

async fn thousand_streams() {
    wisp_testkit::ensure_installed().expect("installing the pinned servers");
    let server = RealServer::start(ServerKind::WispJs { motd: None })
        .await
        .expect("starting wisp-js");
    let echo = TcpEcho::start().await;
    let (host, port) = (echo.addr().ip().to_string(), echo.addr().port());
    let (mux, driver) = connect(&server).await;
    let heap_before = HEAP.allocated();
    let started = Instant::now();

    let work = async {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..STREAMS {
            let stream = mux
                .new_stream(StreamType::TCP, host.as_str(), port)
                .await
                .unwrap_or_else(|e| panic!("opening stream {n}: {e}"));
            tasks.spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                let writer = tokio::spawn(async move {
                    let mut sent = 0;
                    while sent < PER_STREAM {
                        let chunk: Vec<u8> =
                            (sent..sent + 16 * 1024).map(|i| pattern(n, i)).collect();
                        wr.send(Bytes::from(chunk)).await?;
                        sent += 16 * 1024;
                    }
                    Ok::<_, WispError>(wr)
                });
                let mut received = 0;
                while received < PER_STREAM {
                    let chunk = rd
                        .next()
                        .await
                        .unwrap_or_else(|| panic!("stream {n}: ended at offset {received}"))
                        .unwrap_or_else(|e| {
                            panic!("stream {n}: reading at offset {received}: {e}")
                        });
                    if let Some(k) =
                        (0..chunk.len()).find(|&k| chunk[k] != pattern(n, received + k))
                    {
                        panic!("stream {n}: byte {} differs", received + k);
                    }
                    received += chunk.len();
                }
                assert_eq!(received, PER_STREAM, "stream {n}: no byte more than sent");
                let wr = writer
                    .await
                    .expect("writer task")
                    .unwrap_or_else(|e| panic!("stream {n}: writing: {e}"));
                wr.close(CloseReason::VOLUNTARY)
                    .await
                    .unwrap_or_else(|e| panic!("stream {n}: closing: {e}"));
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a stream task panicked");
        }
    };
    tokio::time::timeout(SOAK_BOUND, work)
        .await
        .unwrap_or_else(|_| panic!("{STREAMS} x 1 MiB did not finish within {SOAK_BOUND:?}"));
    let elapsed = started.elapsed();

    // A local close takes the stream out of the mux at once.
    assert_eq!(mux.stream_count(), 0, "every stream left the mux");
    assert!(
        echo.wait_idle(Duration::from_secs(10)).await,
        "the echo still has {} connections 10 s after every stream closed",
        echo.open_connections()
    );
    // The transmit buffers keep the size the burst gave them until the connection has been
    // idle for a moment (a quarter of a second): wait for that, bounded.
    let settle = Instant::now() + Duration::from_secs(5);
    while HEAP.allocated() > 2 * heap_before && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let heap_after = HEAP.allocated();
    let mib = (2 * STREAMS * PER_STREAM) as f64 / (1024.0 * 1024.0);
    eprintln!(
        "soak: {STREAMS} streams x 1 MiB each way in {elapsed:.2?} ({:.0} MiB/s both ways); \
         heap in use {} KiB before, {} KiB after ({:.2}x)",
        mib / elapsed.as_secs_f64(),
        heap_before / 1024,
        heap_after / 1024,
        heap_after as f64 / heap_before as f64
    );
    assert!(
        heap_after <= 2 * heap_before,
        "heap in use grew from {heap_before} to {heap_after} bytes"
    );
    mux.close().await.expect("closing the mux");
    driver
        .await
        .expect("driver task")
        .expect("driver ended cleanly");
}

#[test]
#[ignore = "soak: run with --ignored (scripts/test.sh --soak)"]
fn ten_thousand_open_close_cycles_leak_nothing() {
    run(open_close_cycles());
}

async fn open_close_cycles() {
    wisp_testkit::ensure_installed().expect("installing the pinned servers");
    let server = RealServer::start(ServerKind::WispJs { motd: None })
        .await
        .expect("starting wisp-js");
    let echo = TcpEcho::start().await;
    let (host, port) = (echo.addr().ip().to_string(), echo.addr().port());
    let (mux, driver) = connect(&server).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    let work = async {
        for cycle in 0..CYCLES {
            let mut stream = mux
                .new_stream(StreamType::TCP, host.as_str(), port)
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: opening: {e}"));
            assert_eq!(
                stream.get_stream_id(),
                cycle + 1,
                "ids are sequential, never reused"
            );
            // Every tenth stream moves a byte first, so both the idle and the used path
            // are cycled.
            if cycle % 10 == 0 {
                stream
                    .send(Bytes::from_static(b"x"))
                    .await
                    .unwrap_or_else(|e| panic!("cycle {cycle}: sending: {e}"));
                let back = stream.next().await.expect("echo").expect("echo data");
                assert_eq!(&back[..], b"x");
            }
            stream
                .close(CloseReason::VOLUNTARY)
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: closing: {e}"));
        }
    };
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("10,000 cycles within 120 s");
    assert_eq!(mux.stream_count(), 0, "no stream left in the mux");
    assert!(
        echo.wait_idle(Duration::from_secs(10)).await,
        "the echo still has {} connections 10 s after every stream closed",
        echo.open_connections()
    );
    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before,
        "no task left behind by 10,000 streams"
    );
    mux.close().await.expect("closing the mux");
    driver
        .await
        .expect("driver task")
        .expect("driver ended cleanly");
}
