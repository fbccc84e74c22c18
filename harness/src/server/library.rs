//! Library mode: a server-role case's `actions` run through our client (`ClientMux`) over
//! a recorded transport, for ordinary traffic (echo, bulk data, many streams, close
//! reasons). The actions run in the engine's one interpreter under the strict policy:
//! every wait is bounded by the step timeout, and the first action that fails stops them.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use wisp_cases::ServerCase;
use wisp_cases::client::VersionSel;
use wisp_client::ClientMux;
use wisp_client::proto::StreamType;
use wisp_client::transport::TransportExt;

use super::session::{Recorder, RecordingTransport};
use super::{Body, CaseCtx, RunMode};
use crate::engine::actions::{ActionState, Observer, Policy, Slot, run_actions};
use crate::engine::judge::{Wording, check_stream, error_text, judge_handshake};
use crate::engine::ours::{open_mux, v2_handshake};

impl Observer for Recorder {
    fn step(&self, step: Option<usize>) {
        self.set_step(step);
    }

    fn alias(&self, alias: &str, id: u32) {
        Recorder::alias(self, alias, id);
    }

    fn event(&self, text: String) {
        Recorder::event(self, text);
    }
}

/// Runs a case's actions. A connection that cannot be opened is a connection error.
pub(crate) async fn run(case: &ServerCase, ctx: &CaseCtx, rec: &Recorder) -> Body {
    let mut body = Body::default();
    let step = ctx.step_timeout;
    let Some(ws) = ctx.connect(rec, &mut body).await else {
        return body;
    };
    let (rx, tx) = RecordingTransport::new(ws, rec.clone()).split_fast();
    let options = super::session::mux_options(step);
    let version = match ctx.version {
        RunMode::V1 => VersionSel::V1,
        RunMode::V2 => VersionSel::V2,
    };
    let handshake = v2_handshake(version, &ctx.offer(), &[]);
    let expect = &case.expect;
    let opened = open_mux(rx, tx, handshake, options, &[]).await;
    let judged = judge_handshake(
        expect.error.as_ref(),
        Some(&opened.as_ref().map(|_| ()).map_err(Clone::clone)),
    );
    let (mux, driver) = match opened {
        Ok((mux, driver)) if expect.error.is_none() => (mux, driver),
        Ok((mux, driver)) => {
            // The handshake looks done where the case expects it to fail. In the older
            // order (CONTINUE(0), then INFO) the server judges the client INFO only after
            // it: wait (bounded) for its judgement before the verdict.
            let driver = tokio::spawn(driver);
            match await_judgement(&mux, ctx, rec).await {
                Judgement::Rejected(how) => {
                    rec.event(format!("the server judged the client INFO: {how}"));
                    wait_close_on(rec, case, &body).await;
                }
                Judgement::Accepted(how) => {
                    body.failures.extend(judged.map(|j| format!("{j}: {how}")));
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), mux.close()).await;
            driver.abort();
            return body;
        }
        Err(e) => {
            rec.event(format!("handshake: {}", error_text(&e)));
            let expected = expect.error.is_some();
            body.failures.extend(judged);
            if expected {
                wait_close_on(rec, case, &body).await;
            }
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
    let mut state = ActionState::default();
    run_actions(
        &mux,
        &case.actions,
        Policy::Strict { step },
        rec,
        &mut state,
    )
    .await;
    body.failures.append(&mut state.failures);
    for (alias, slot) in &state.streams {
        if let Some(id) = slot.id {
            body.ids.insert(alias.clone(), id);
        }
    }
    check_streams(case, &state.streams, &mut body);
    wait_close_on(rec, case, &body).await;
    drop(state);
    let _ = tokio::time::timeout(Duration::from_secs(1), mux.close()).await;
    driver.abort();
    body
}

/// What the server did with the client INFO, once the client library considered the
/// handshake done.
enum Judgement {
    /// It refused the connection (how: a CLOSE on stream 0, or the end of the connection).
    Rejected(String),
    /// It served the connection (how), or did nothing within the bound.
    Accepted(String),
}

/// Waits, at most the step timeout, for the server's judgement of the client INFO: a
/// CLOSE on stream 0 or the end of the connection (rejected), or a stream to the TCP echo
/// that echoes a probe (accepted).
async fn await_judgement(mux: &ClientMux, ctx: &CaseCtx, rec: &Recorder) -> Judgement {
    const PROBE: &[u8] = b"auth-judgement-probe";
    let step = ctx.step_timeout;
    let echo = &ctx.tcp_echo;
    let probe = async {
        let mut stream = mux
            .new_stream(StreamType::TCP, echo.host.clone(), echo.port)
            .await
            .map_err(|e| error_text(&e))?;
        stream
            .send(Bytes::from_static(PROBE))
            .await
            .map_err(|e| error_text(&e))?;
        let mut got = Vec::new();
        while got.len() < PROBE.len() {
            match stream.next().await {
                Some(Ok(chunk)) => got.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(error_text(&e)),
                None => return Err("the probe stream ended".to_owned()),
            }
        }
        Ok(got)
    };
    let probed = tokio::time::timeout(step, probe).await;
    if let Some(close) = rec.close_on(0) {
        return Judgement::Rejected(format!("CLOSE(0) reason {}", close.reason));
    }
    match probed {
        Ok(Ok(got)) if got.starts_with(PROBE) => Judgement::Accepted(
            "after the handshake a stream to the TCP echo echoed a probe".to_owned(),
        ),
        Ok(Ok(_)) => Judgement::Accepted(
            "after the handshake a stream to the TCP echo carried data".to_owned(),
        ),
        Ok(Err(why)) if mux.is_closed() => Judgement::Rejected(format!(
            "the connection ended without a CLOSE on stream 0 ({why})"
        )),
        Ok(Err(why)) => Judgement::Accepted(format!(
            "no rejection; a stream to the TCP echo failed: {why}"
        )),
        Err(_) => Judgement::Accepted(format!(
            "the server neither rejected the client INFO nor served a stream within {}ms",
            step.as_millis()
        )),
    }
}

/// Waits (at most the judge's `within`) for the CLOSE the close judge reads.
async fn wait_close_on(rec: &Recorder, case: &ServerCase, body: &Body) {
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

/// How the server role words the stream checks' failures.
const SERVER_WORDING: Wording = Wording {
    reason: "close reason",
    error: "error",
    open_sep: " ",
    closed_by: |_, end, want| {
        format!(
            "{}, expected it to be ended by the {}",
            end.unwrap_or("still open"),
            format!("{want:?}").to_lowercase()
        )
    },
};

fn check_streams(case: &ServerCase, streams: &BTreeMap<String, Slot>, body: &mut Body) {
    for (alias, want) in &case.expect.streams {
        let who = format!("stream {alias}");
        let Some(slot) = streams.get(alias).filter(|s| s.id.is_some()) else {
            body.failures.push(format!("{who} was never opened"));
            continue;
        };
        let end = slot.end();
        check_stream(
            &who,
            want,
            &slot.seen(end.as_ref()),
            &SERVER_WORDING,
            &mut body.failures,
        );
    }
}
