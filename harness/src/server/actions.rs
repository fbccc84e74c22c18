//! Library mode: a case's `actions` run through `wisp_client::ClientMux` over a recorded
//! transport, for ordinary traffic (echo, bulk data, many streams, close reasons). Every
//! wait is bounded by the step timeout; bulk transfers are bounded by progress (no byte
//! within a step timeout fails them).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use wisp_cases::ServerCase as Case;
use wisp_cases::actions::{Action, EchoAction, ReadUntil};
use wisp_client::extensions::{
    AnyExtensionBuilder, CertAuthExtensionBuilder, MotdExtensionBuilder, PasswordExtensionBuilder,
    UdpExtensionBuilder, WispV2Handshake,
};
use wisp_client::proto::{CloseReason, Initiator, StreamType};
use wisp_client::transport::TransportExt;
use wisp_client::{ClientMux, MuxOptions, MuxStream, StreamEnd, WispError};
use wisp_mock_server::trace::payload_summary;

use crate::stream_check::{Seen, Wording, check_stream, error_text};

use super::session::{Recorder, RecordingTransport};
use super::{Body, CaseCtx, RunMode};

/// One stream a case opened.
#[derive(Default)]
struct Slot {
    stream: Option<MuxStream>,
    id: Option<u32>,
    data: Vec<u8>,
    read_error: Option<WispError>,
    dropped: Option<Option<StreamEnd>>,
}

/// The v2 handshake the case asks for (`None`: v1).
fn handshake(ctx: &CaseCtx) -> Option<WispV2Handshake> {
    if ctx.version == RunMode::V1 {
        return None;
    }
    let mut builders: Vec<AnyExtensionBuilder> =
        vec![UdpExtensionBuilder.into(), MotdExtensionBuilder.into()];
    if let Some((user, pass, layout)) = &ctx.password {
        builders.push(
            PasswordExtensionBuilder::new_client(Some((user.clone(), pass.clone())))
                .layout(*layout)
                .into(),
        );
    }
    if let Some(key) = &ctx.key {
        builders.push(CertAuthExtensionBuilder::new_client(Some(key.clone())).into());
    }
    Some(WispV2Handshake::new(builders))
}

/// Runs a case's actions. A connection that cannot be opened is a connection error.
pub(crate) async fn run_actions(case: &Case, ctx: &CaseCtx, rec: &Recorder) -> Body {
    let mut body = Body::default();
    let step = ctx.step_timeout;
    let Some(ws) = ctx.connect(rec, &mut body).await else {
        return body;
    };
    let (rx, tx) = RecordingTransport::new(ws, rec.clone()).split_fast();
    let options = MuxOptions::default()
        .handshake_timeout(Some(step))
        .legacy_info_wait(Duration::from_millis(500))
        .close_timeout(Duration::from_secs(1));
    let expect = &case.expect;
    let result = ClientMux::new_with_options(rx, tx, handshake(ctx), options).await;
    let (mux, driver) = match (result, &expect.error) {
        (Ok(res), None) => res.with_no_required_extensions(),
        (Ok(res), Some(want)) => {
            body.failures.push(format!(
                "the handshake succeeded; expected it to fail with {want}"
            ));
            let (mux, driver) = res.with_no_required_extensions();
            let driver = tokio::spawn(driver);
            let _ = tokio::time::timeout(Duration::from_secs(1), mux.close()).await;
            driver.abort();
            return body;
        }
        (Err(e), Some(want)) => {
            rec.event(format!("handshake: {}", error_text(&e)));
            if !want.matches(&e) {
                body.failures.push(format!(
                    "the handshake failed with {}; expected {want}",
                    error_text(&e)
                ));
            }
            wait_close_on(rec, case, &body, ctx).await;
            return body;
        }
        (Err(e), None) => {
            rec.event(format!("handshake: {}", error_text(&e)));
            body.failures
                .push(format!("the handshake failed: {}", error_text(&e)));
            return body;
        }
    };
    rec.event(format!(
        "handshake ok: version {}, downgraded {}, credit {}, extensions {:?}",
        mux.version(),
        mux.was_downgraded(),
        mux.initial_credit(),
        mux.get_extension_ids()
    ));
    let driver = tokio::spawn(driver);
    let mut streams: BTreeMap<String, Slot> = BTreeMap::new();
    for (i, action) in case.actions.iter().enumerate() {
        rec.set_step(Some(i));
        if let Err(why) = run_action(&mux, &mut streams, &action.value, ctx, rec).await {
            let failure = format!("action #{i}: {why}");
            rec.event(format!("FAILED: {failure}"));
            body.failures.push(failure);
            break;
        }
    }
    rec.set_step(None);
    for (alias, slot) in &streams {
        if let Some(id) = slot.id {
            body.ids.insert(alias.clone(), id);
        }
    }
    check_streams(case, &streams, &mut body);
    wait_close_on(rec, case, &body, ctx).await;
    drop(streams);
    let _ = tokio::time::timeout(Duration::from_secs(1), mux.close()).await;
    driver.abort();
    body
}

/// Waits (at most the judge's `within`) for the CLOSE the close judge reads.
async fn wait_close_on(rec: &Recorder, case: &Case, body: &Body, _ctx: &CaseCtx) {
    let Some(judge) = &case.close else {
        return;
    };
    let Some(id) = body.stream_id(&judge.stream) else {
        return;
    };
    let deadline = Instant::now() + judge.within.map_or(Duration::from_secs(2), |d| d.0);
    while rec.close_on(id).is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run_action(
    mux: &ClientMux,
    streams: &mut BTreeMap<String, Slot>,
    action: &Action,
    ctx: &CaseCtx,
    rec: &Recorder,
) -> Result<(), String> {
    let step = ctx.step_timeout;
    let timed_out = |what: &str| format!("{what}: no progress within {}ms", step.as_millis());
    match action {
        Action::Open(open) => {
            let opened = tokio::time::timeout(
                step,
                mux.new_stream(open.stream_type.0, &open.host, open.port),
            )
            .await
            .map_err(|_| timed_out(&format!("open {}", open.stream)))?
            .map_err(|e| format!("open {}: {}", open.stream, error_text(&e)))?;
            let id = opened.get_stream_id();
            rec.alias(&open.stream, id);
            let slot = streams.entry(open.stream.clone()).or_default();
            slot.id = Some(id);
            slot.stream = Some(opened);
            Ok(())
        }
        Action::Send(send) => {
            let stream = open_stream(streams, &send.stream)?;
            let payload = Bytes::from(send.payload());
            for n in 0..send.times.unwrap_or(1).max(1) {
                tokio::time::timeout(step, stream.send(payload.clone()))
                    .await
                    .map_err(|_| timed_out(&format!("send {} (write {n})", send.stream)))?
                    .map_err(|e| format!("send {}: {}", send.stream, error_text(&e)))?;
            }
            Ok(())
        }
        Action::Close(close) => {
            let stream = open_stream(streams, &close.stream)?;
            let reason = close.reason.map_or(CloseReason::VOLUNTARY, |r| r.0);
            tokio::time::timeout(step, MuxStream::close(stream, reason))
                .await
                .map_err(|_| timed_out(&format!("close {}", close.stream)))?
                .map_err(|e| format!("close {}: {}", close.stream, error_text(&e)))
        }
        Action::Read(read) => read_stream(streams, &read.stream, read.until, step).await,
        Action::WaitClosed(alias) => read_stream(streams, alias, ReadUntil::End, step).await,
        Action::Drop(alias) => {
            let slot = streams
                .get_mut(alias)
                .ok_or_else(|| format!("drop {alias}: no such stream"))?;
            if let Some(stream) = slot.stream.take() {
                slot.dropped = Some(stream.end());
            }
            Ok(())
        }
        Action::CloseMux(c) => {
            let closed = match c.reason {
                Some(r) => tokio::time::timeout(step, mux.close_with_reason(r.0)).await,
                None => tokio::time::timeout(step, mux.close()).await,
            };
            closed
                .map_err(|_| timed_out("close_mux"))?
                .map_err(|e| format!("close_mux: {}", error_text(&e)))
        }
        Action::Sleep(d) => {
            tokio::time::sleep(d.0).await;
            Ok(())
        }
        Action::Echo(echo) => {
            let summary = run_echo(mux, echo, step).await?;
            rec.event(summary);
            Ok(())
        }
    }
}

fn open_stream<'a>(
    streams: &'a mut BTreeMap<String, Slot>,
    alias: &str,
) -> Result<&'a mut MuxStream, String> {
    streams
        .get_mut(alias)
        .and_then(|s| s.stream.as_mut())
        .ok_or_else(|| format!("stream {alias} is not open"))
}

async fn read_stream(
    streams: &mut BTreeMap<String, Slot>,
    alias: &str,
    until: ReadUntil,
    step: Duration,
) -> Result<(), String> {
    let slot = streams
        .get_mut(alias)
        .ok_or_else(|| format!("read {alias}: no such stream"))?;
    let Some(stream) = slot.stream.as_mut() else {
        return Err(format!("read {alias}: the stream is not open"));
    };
    loop {
        if let ReadUntil::Bytes(n) = until
            && slot.data.len() >= n
        {
            return Ok(());
        }
        match tokio::time::timeout(step, stream.next()).await {
            Ok(Some(Ok(chunk))) => slot.data.extend_from_slice(&chunk),
            Ok(Some(Err(e))) => {
                let text = error_text(&e);
                slot.read_error = Some(e);
                return match until {
                    ReadUntil::End => Ok(()),
                    ReadUntil::Bytes(n) => Err(format!(
                        "read {alias}: {} of {n} bytes, then the connection ended: {text}",
                        slot.data.len()
                    )),
                };
            }
            Ok(None) => {
                return match until {
                    ReadUntil::End => Ok(()),
                    ReadUntil::Bytes(n) => Err(format!(
                        "read {alias}: {} of {n} bytes, then the stream ended ({})",
                        slot.data.len(),
                        stream.end().map_or("open".to_owned(), |e| describe_end(&e))
                    )),
                };
            }
            Err(_) => {
                let what = match until {
                    ReadUntil::End => "the end of the stream".to_owned(),
                    ReadUntil::Bytes(n) => format!("{n} bytes"),
                };
                return Err(format!(
                    "read {alias}: waited for {what}; got {} within {}ms (timeout)",
                    payload_summary(&slot.data),
                    step.as_millis()
                ));
            }
        }
    }
}

fn describe_end(end: &StreamEnd) -> String {
    match end {
        StreamEnd::Closed { reason, initiator } => format!(
            "closed by the {} with reason {reason}",
            match initiator {
                Initiator::Remote => "server",
                Initiator::Local => "client",
            }
        ),
        StreamEnd::OpenFailed(e) => format!("open failed: {}", error_text(e)),
        StreamEnd::ConnectionEnded(e) => format!("the connection ended: {}", error_text(e)),
        other => format!("{other:?}"),
    }
}

/// How the server suite words the stream checks' failures.
const SERVER_WORDING: Wording = Wording {
    reason: "close reason",
    error: "error",
    open_sep: " ",
    closed_by: |_, end, want| {
        format!(
            "{}, expected it to be ended by the {}",
            end.map_or("still open".to_owned(), describe_end),
            format!("{want:?}").to_lowercase()
        )
    },
};

fn check_streams(case: &Case, streams: &BTreeMap<String, Slot>, body: &mut Body) {
    for (alias, want) in &case.expect.streams {
        let who = format!("stream {alias}");
        let Some(slot) = streams.get(alias) else {
            body.failures.push(format!("{who} was never opened"));
            continue;
        };
        let end = match &slot.dropped {
            Some(end) => end.clone(),
            None => slot.stream.as_ref().and_then(MuxStream::end),
        };
        let seen = Seen {
            opened: slot.stream.is_some(),
            data: &slot.data,
            open_error: None,
            read_error: slot.read_error.as_ref(),
            end: end.as_ref(),
            dropped: slot.dropped.is_some(),
        };
        check_stream(&who, want, &seen, &SERVER_WORDING, &mut body.failures);
    }
}

/// The generated bytes of one stream: byte `k` depends only on the seed and `k`, so the
/// writer and the reader agree whatever chunks the server forwards.
fn fill_at(seed: u64, offset: usize, buf: &mut [u8]) {
    let mut k = offset;
    let mut i = 0;
    while i < buf.len() {
        // splitmix64 of (seed, word index)
        let mut z = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((k / 8) as u64);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let word = z.to_le_bytes();
        let start = k % 8;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        k += n;
    }
}

/// Opens `echo.streams` TCP streams at once, writes `echo.len` generated bytes on each and
/// checks that exactly those bytes come back. Fails on the first stream that stalls (no
/// byte within `step`), ends early or returns different bytes.
async fn run_echo(mux: &ClientMux, echo: &EchoAction, step: Duration) -> Result<String, String> {
    let started = Instant::now();
    let opens = (0..echo.streams).map(|_| async {
        tokio::time::timeout(step, mux.new_stream(StreamType::TCP, &echo.host, echo.port)).await
    });
    let mut opened = Vec::with_capacity(echo.streams);
    for (i, r) in futures::future::join_all(opens)
        .await
        .into_iter()
        .enumerate()
    {
        match r {
            Ok(Ok(s)) => opened.push(s),
            Ok(Err(e)) => {
                return Err(format!(
                    "echo: opening stream {i} failed: {}",
                    error_text(&e)
                ));
            }
            Err(_) => {
                return Err(format!(
                    "echo: opening stream {i} took over {}ms",
                    step.as_millis()
                ));
            }
        }
    }
    let len = echo.len;
    let chunk = echo.chunk;
    let window = echo.window.unwrap_or(usize::MAX);
    let transfers = opened.into_iter().enumerate().map(|(i, stream)| async move {
        let id = stream.get_stream_id();
        let (mut read, mut write) = stream.into_split();
        // How many bytes have come back, for the writer's window.
        let (echoed_tx, mut echoed_rx) = tokio::sync::watch::channel(0usize);
        let writer = async {
            let mut sent = 0;
            while sent < len {
                let n = chunk.min(len - sent);
                let room = |got: &usize| sent + n - got.min(&sent) <= window;
                if tokio::time::timeout(step, echoed_rx.wait_for(room)).await.is_err() {
                    return Err(format!(
                        "stream {i} (id {id}): no echo for {}ms with {sent} of {len} bytes sent",
                        step.as_millis()
                    ));
                }
                let mut buf = vec![0u8; n];
                fill_at(i as u64 + 1, sent, &mut buf);
                match tokio::time::timeout(step, write.send(Bytes::from(buf))).await {
                    Ok(Ok(())) => sent += n,
                    Ok(Err(e)) => {
                        return Err(format!(
                            "stream {i} (id {id}): writing failed after {sent} of {len} bytes: {}",
                            error_text(&e)
                        ));
                    }
                    Err(_) => {
                        return Err(format!(
                            "stream {i} (id {id}): a write blocked for {}ms after {sent} of {len} bytes (no credit?)",
                            step.as_millis()
                        ));
                    }
                }
            }
            Ok(write)
        };
        let reader = async {
            let mut got = 0usize;
            let mut want = Vec::new();
            while got < len {
                match tokio::time::timeout(step, read.next()).await {
                    Ok(Some(Ok(data))) => {
                        if got + data.len() > len {
                            return Err(format!(
                                "stream {i} (id {id}): {} bytes came back, more than the {len} sent",
                                got + data.len()
                            ));
                        }
                        want.resize(data.len(), 0);
                        fill_at(i as u64 + 1, got, &mut want);
                        if let Some(at) = data.iter().zip(&want).position(|(a, b)| a != b) {
                            return Err(format!(
                                "stream {i} (id {id}): the echo differs at byte {}",
                                got + at
                            ));
                        }
                        got += data.len();
                        echoed_tx.send_replace(got);
                    }
                    Ok(Some(Err(e))) => {
                        return Err(format!(
                            "stream {i} (id {id}): {got} of {len} bytes, then {}",
                            error_text(&e)
                        ));
                    }
                    Ok(None) => {
                        return Err(format!(
                            "stream {i} (id {id}): {got} of {len} bytes, then the stream ended ({})",
                            read.end().map_or("open".to_owned(), |e| describe_end(&e))
                        ));
                    }
                    Err(_) => {
                        return Err(format!(
                            "stream {i} (id {id}): {got} of {len} bytes came back, then nothing for {}ms",
                            step.as_millis()
                        ));
                    }
                }
            }
            Ok(())
        };
        let (w, r) = futures::join!(writer, reader);
        match (w, r) {
            (Ok(write), Ok(())) => {
                drop(write);
                Ok(())
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    });
    let results = futures::future::join_all(transfers).await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if let Some(first) = errors.first() {
        return Err(format!(
            "echo: {} of {} streams failed; first: {first}",
            errors.len(),
            echo.streams
        ));
    }
    Ok(format!(
        "echo: {} stream(s) x {len} bytes came back byte-exact in {}ms",
        echo.streams,
        started.elapsed().as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bytes_do_not_depend_on_chunking() {
        let mut whole = vec![0u8; 100];
        fill_at(3, 0, &mut whole);
        let mut parts = vec![0u8; 100];
        for (start, end) in [(0, 5), (5, 13), (13, 64), (64, 99), (99, 100)] {
            fill_at(3, start, &mut parts[start..end]);
        }
        assert_eq!(whole, parts);
        let mut other = vec![0u8; 100];
        fill_at(4, 0, &mut other);
        assert_ne!(whole, other);
    }
}
