//! Turns in the transmit batch (see `wisp_proto`'s send queue): a writer granted a turn
//! that never uses it must not hold up the writers waiting behind it. Real loopback
//! WebSocket, scripted server, tokio clock paused (a stall fails on a virtual timeout).

mod support;

use std::time::Duration;

use futures::FutureExt as _;
use rstest::rstest;
use support::{Mode, v1_session_in};
use tokio::io::AsyncWriteExt as _;
use wisp_client::MuxOptions;
use wisp_client::proto::{PacketBody, StreamType};

#[rstest]
#[tokio::test(start_paused = true)]
async fn a_granted_turn_left_unused_does_not_stall_the_waiting_writers(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    // A 4 KiB queue: one 5,000-byte payload fills a batch, and a stream's turn is one.
    let options = MuxOptions::default().max_queued_bytes(4096);
    let (mut peer, mux, _driver) = v1_session_in(mode, 100, options).await;
    let mut a = mux
        .new_stream(StreamType::TCP, "h", 1)
        .await
        .unwrap()
        .into_tokio_io();
    let mut b = mux
        .new_stream(StreamType::TCP, "h", 2)
        .await
        .unwrap()
        .into_tokio_io();
    let payload = vec![7u8; 5000];
    // Each stream's first payload is admitted (a new stream always gets one packet); the
    // next is refused and waits for a turn, a's first in line.
    a.write_all(&payload).await.unwrap();
    b.write_all(&payload).await.unwrap();
    assert!(
        a.write(&payload).now_or_never().is_none(),
        "over its share: a waits for a turn"
    );
    // a's writer goes away without writing again (its future dropped): when the batch is
    // taken, a is granted the next turn and never uses it. b must not wait on it.
    let writer = tokio::spawn(async move {
        b.write_all(&payload).await.unwrap();
        b
    });
    let mut data = 0;
    while data < 3 {
        let p = tokio::time::timeout(Duration::from_secs(30), peer.recv())
            .await
            .expect("the waiting writer was woken");
        if matches!(p.body, PacketBody::Data(_)) {
            data += 1;
        }
    }
    let _b = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("b's second payload went out")
        .unwrap();
    drop(a);
}
