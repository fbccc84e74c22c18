//! The loader: located errors for every kind of mistake, IDs from paths, roles that
//! cannot mix, placeholders, and no panic on broken input.

use std::path::Path;

use wisp_cases::server::ClientStep;
use wisp_cases::{
    Case, LoadError, Placeholders, Role, case_id, load_case_str, load_case_str_with, load_dir,
};

const GOOD: &str = "\
title: t
spec: s
level: must
description: d
client:
  version: v2
  extensions: [udp]
server:
  - send: {type: CONTINUE, stream: 0, credit: 128}
expect:
  handshake: ok
";

fn load(src: &str) -> Result<Case, LoadError> {
    load_case_str(
        Path::new("/cases"),
        Path::new("/cases/handshake/sample.yaml"),
        src,
    )
}

fn err_of(src: &str) -> LoadError {
    match load(src) {
        Ok(_) => panic!("expected a load error"),
        Err(e) => e,
    }
}

#[test]
fn good_case_loads_with_the_id_of_its_path() {
    let case = load(GOOD).expect("loads");
    assert_eq!(case.id(), "handshake.sample");
    assert_eq!(case.role(), Role::Client);
    assert_eq!(case.meta().group, "handshake");
    let client = case.as_client().expect("client role");
    assert_eq!(client.server.len(), 1);
}

#[test]
fn ids_come_from_paths() {
    assert_eq!(
        case_id(Path::new("auth/both.password-satisfies.yaml")).as_deref(),
        Ok("auth.both.password-satisfies")
    );
    assert_eq!(
        case_id(Path::new("server/auth/password.wrong.yaml")).as_deref(),
        Ok("server.auth.password.wrong")
    );
    assert!(case_id(Path::new("top-level.yaml")).is_err());
    assert!(case_id(Path::new("auth/Capital.yaml")).is_err());
    assert!(case_id(Path::new("auth/two..dots.yaml")).is_err());
}

#[test]
fn an_id_key_is_an_error_that_names_the_path_id() {
    let e = err_of(&format!("id: handshake.other\n{GOOD}"));
    assert_eq!((e.line, e.column), (1, 5), "{e}");
    assert!(e.message.contains("\"handshake.sample\""), "{e}");
    assert!(e.message.contains("rename the file"), "{e}");
}

#[test]
fn unknown_key_names_line_and_column() {
    let e = err_of(&GOOD.replace("title: t\n", "title: t\nbogus: 1\n"));
    assert_eq!((e.line, e.column), (2, 1), "{e}");
    assert!(e.message.contains("unknown field `bogus`"), "{e}");
    assert!(
        e.to_string()
            .starts_with("/cases/handshake/sample.yaml:2:1:"),
        "{e}"
    );
}

#[test]
fn wrong_type_names_line_and_column() {
    let e = err_of(&GOOD.replace("credit: 128", "credit: lots"));
    assert_eq!(e.line, 9, "{e}");
    assert!(e.column > 1, "{e}");
}

#[test]
fn bad_hex_names_line_and_column() {
    let src = GOOD.replace(
        "  - send: {type: CONTINUE, stream: 0, credit: 128}",
        "  - send_raw: \"03 0z\"",
    );
    let e = err_of(&src);
    assert_eq!((e.line, e.column), (9, 15), "{e}");
    assert!(e.message.contains("bad hex"), "{e}");
}

#[test]
fn unknown_error_name_names_line_and_column() {
    let src = GOOD.replace("  handshake: ok", "  error: NoSuchError");
    let e = err_of(&src);
    assert_eq!((e.line, e.column), (11, 10), "{e}");
    assert!(e.message.contains("unknown error name"), "{e}");
}

#[test]
fn error_payload_of_wrong_shape_is_rejected() {
    let src = GOOD.replace("  handshake: ok", "  error: {HandshakeTimedOut: 3}");
    let e = err_of(&src);
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("carries no payload"), "{e}");
}

#[test]
fn unknown_extension_names_line_and_column() {
    let e = err_of(&GOOD.replace("extensions: [udp]", "extensions: [udp, bogus]"));
    assert_eq!(e.line, 7, "{e}");
    assert!(e.message.contains("bogus"), "{e}");
    let e = err_of(&GOOD.replace("  extensions: [udp]", "  required: [teleport]"));
    assert_eq!((e.line, e.column), (7, 14), "{e}");
    assert!(e.message.contains("unknown extension"), "{e}");
}

#[test]
fn bad_duration_names_line_and_column() {
    let src = GOOD.replace(
        "  - send: {type: CONTINUE, stream: 0, credit: 128}",
        "  - pause: 15",
    );
    let e = err_of(&src);
    assert_eq!((e.line, e.column), (9, 12), "{e}");
    assert!(e.message.contains("needs a unit"), "{e}");
    let src = GOOD.replace(
        "  - send: {type: CONTINUE, stream: 0, credit: 128}",
        "  - expect_nothing: 2 hours",
    );
    let e = err_of(&src);
    assert_eq!(e.line, 9, "{e}");
}

#[test]
fn field_of_another_packet_type_is_rejected() {
    let e = err_of(&GOOD.replace("credit: 128", "credit: 128, reason: 2"));
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.contains("does not belong"), "{e}");
}

#[test]
fn alias_used_before_open_is_rejected() {
    let src = GOOD.replace(
        "  extensions: [udp]\n",
        "  extensions: [udp]\n  actions:\n    - send: {stream: s1, text: hi}\n",
    );
    let e = err_of(&src);
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.contains("before an `open`"), "{e}");
}

#[test]
fn whole_case_mistakes_point_at_their_key() {
    let e = err_of(&GOOD.replace("  handshake: ok\n", "  downgraded: false\n"));
    assert_eq!((e.line, e.column), (10, 1), "{e}");
    assert!(e.message.contains("exactly one of"), "{e}");
    let e = err_of(&GOOD.replace(
        "  handshake: ok\n",
        "  handshake: ok\n  verdict: non-strict\n",
    ));
    assert!(e.message.contains("does not fit `level: must`"), "{e}");
}

#[test]
fn missing_key_file_is_reported() {
    let src = GOOD.replace(
        "extensions: [udp]",
        "extensions: [{cert_auth: {key: keys/nope.pem}}]",
    );
    let e = err_of(&src);
    assert_eq!(e.line, 7, "{e}");
    assert!(e.message.contains("cannot read key file"), "{e}");
}

#[test]
fn the_same_id_from_two_paths_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topic = dir.path().join("handshake");
    std::fs::create_dir_all(topic.join("a")).expect("dirs");
    std::fs::write(topic.join("a.b.yaml"), GOOD).expect("write");
    std::fs::write(topic.join("a").join("b.yaml"), GOOD).expect("write");
    let (cases, errors) = load_dir(dir.path());
    assert_eq!(cases.len(), 1);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .message
            .contains("duplicate case ID \"handshake.a.b\""),
        "{}",
        errors[0]
    );
}

const SERVER_CASE: &str = "\
role: server
title: t
spec: s
level: must
description: d
script:
  - handshake
  - send: {type: CONNECT, stream: s1, stream_type: tcp, host: \"${tcp_echo.host}\", port: ${tcp_echo.port}}
  - send: {type: DATA, stream: s1, text: x, times: 2*credit}
  - expect_echo: {stream: s1}
close: {stream: s1, reason: 0x44, acceptable: [0x42]}
";

fn load_server(src: &str) -> Result<Case, LoadError> {
    load_case_str(
        Path::new("/cases"),
        Path::new("/cases/server/tcp/sample.yaml"),
        src,
    )
}

#[test]
fn server_case_loads_with_placeholders_filled_in() {
    let case = load_case_str(
        Path::new("/cases"),
        Path::new("/cases/server/tcp/sample.dotted.yaml"),
        SERVER_CASE,
    )
    .expect("loads");
    assert_eq!(case.id(), "server.tcp.sample.dotted");
    assert_eq!(case.role(), Role::Server);
    let server = case.as_server().expect("server role");
    assert_eq!(server.family(), "tcp");
    assert_eq!(case.meta().group, "server.tcp");
    assert_eq!(server.script.len(), 4);
    match &server.script[1].value {
        ClientStep::Send(p) => {
            assert_eq!(p.host.as_deref(), Some("127.0.0.1"));
            assert_eq!(p.port, Some(9));
        }
        other => panic!("{other:?}"),
    }
    let mut ph = Placeholders::default();
    ph.set("tcp_echo", "127.0.0.2", 4242);
    let real = load_case_str_with(
        Path::new("/cases"),
        Path::new("/cases/server/tcp/sample.dotted.yaml"),
        &case.meta().source,
        &ph,
    )
    .expect("loads");
    match &real.as_server().expect("server role").script[1].value {
        ClientStep::Send(p) => assert_eq!(p.port, Some(4242)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_case_mistakes_are_load_errors() {
    let e = load_server(&SERVER_CASE.replace("${tcp_echo.port}", "${nowhere.port}"))
        .expect_err("unknown placeholder");
    assert!(e.message.contains("unknown placeholder"), "{e}");
    assert_eq!((e.line, e.column), (8, 89), "{e}");
    let e = load_server(&SERVER_CASE.replace("stream: s1, text: x", "stream: s2, text: x"))
        .expect_err("unbound alias");
    assert!(e.message.contains("before a sent CONNECT"), "{e}");
    let e = load_server(&format!("{SERVER_CASE}actions:\n  - sleep: 1ms\n")).expect_err("both");
    assert!(e.message.contains("not both"), "{e}");
    let e = load_server(&SERVER_CASE.replace("role: server\n", "")).expect_err("role");
    assert!(e.message.contains("need `role: server`"), "{e}");
    let e = load_case_str(
        Path::new("/cases"),
        Path::new("/cases/streams/sample.yaml"),
        SERVER_CASE,
    )
    .expect_err("outside cases/server");
    assert!(e.message.contains("live under cases/server"), "{e}");
    assert_eq!((e.line, e.column), (1, 7), "{e}");
    let e = load_server(&SERVER_CASE.replace("times: 2*credit", "times: 2*credits"))
        .expect_err("bad times");
    assert!(e.message.contains("times"), "{e}");
}

#[test]
fn keys_of_the_other_role_do_not_parse() {
    // A client-role case cannot say how a server-role run connects ...
    let e = err_of(&format!("{GOOD}requires: [udp]\n"));
    assert!(e.message.contains("unknown field `requires`"), "{e}");
    assert_eq!(e.line, 12, "{e}");
    // ... nor script the mock server in a server-role case.
    let e = load_server(&format!(
        "{SERVER_CASE}server_options: {{step_timeout: 1s}}\n"
    ))
    .expect_err("client-role key");
    assert!(e.message.contains("unknown field `server_options`"), "{e}");
    let e = load_server(&SERVER_CASE.replace("close:", "expect: {motd: hi}\nclose:"))
        .expect_err("client-role expectation");
    assert!(e.message.contains("unknown field `motd`"), "{e}");
    // Credit-relative counts belong to server-role scripts.
    let src = GOOD.replace("credit: 128}", "credit: 128, times: credit}");
    let e = err_of(&src);
    assert!(e.message.contains("credit"), "{e}");
}

#[test]
fn broken_yaml_does_not_panic() {
    let e = err_of("title: [\n");
    assert!(e.line >= 1, "{e}");
    let e = err_of("");
    assert!(!e.message.is_empty());
}

#[test]
fn transport_fault_vocabulary_loads() {
    let src = GOOD
        .replace(
            "server:\n",
            "repeat: 3\nserver_options:\n  upgrade: {status: 403, body: no}\nserver:\n",
        )
        .replace(
            "  - send: {type: CONTINUE, stream: 0, credit: 128}\n",
            "  - send_frame: {opcode: close, code: 4000, reason: bye}\n  \
             - send_frame: {opcode: 3, fin: false, rsv: 7, mask: true, hex: \"00\", times: 2, truncate: 1}\n  \
             - reset_tcp\n",
        )
        .replace("  extensions: [udp]\n", "  extensions: [{password: {username: a, password: b, layout: auto}}]\n  max_message_size: 1024\n")
        .replace("  handshake: ok\n", "  handshake: ok\n  mux_ended_within: 10ms\n");
    let case = load(&src).expect("loads");
    let client = case.as_client().expect("client role");
    assert_eq!(client.runs(), 3);
    assert_eq!(client.client.max_message_size, Some(1024));
    let upgrade = client
        .server_options
        .upgrade
        .as_ref()
        .expect("upgrade fault");
    assert_eq!(
        (upgrade.status, upgrade.body.as_deref()),
        (Some(403), Some("no"))
    );
    match &client.client.extensions[0] {
        wisp_cases::client::ClientExtension::Password(p) => {
            assert_eq!(p.layout, wisp_cases::client::LayoutChoice::Auto)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.server.len(), 3);
}

#[test]
fn transport_fault_mistakes_are_load_errors() {
    let with_step = |step: &str| {
        GOOD.replace(
            "  - send: {type: CONTINUE, stream: 0, credit: 128}\n",
            &format!("  - {step}\n"),
        )
    };
    for (step, why) in [
        ("send_frame: {opcode: ping, code: 1000}", "for close frames"),
        ("send_frame: {opcode: close, reason: bye}", "needs a `code`"),
        ("send_frame: {opcode: binary, rsv: 8}", "0-7"),
        (
            "send_frame: {opcode: binary, text: a, hex: \"00\"}",
            "one of",
        ),
        ("send_frame: {opcode: 16}", "0-15"),
        ("send_frame: {opcode: nope}", "unknown opcode"),
    ] {
        let e = err_of(&with_step(step));
        assert!(e.message.contains(why), "{step}: {e}");
        assert_eq!(e.line, 9, "{step}: {e}");
    }
    let e = err_of(&GOOD.replace(
        "server:\n",
        "server_options: {answer_upgrade: false, upgrade: {status: 500}}\nserver:\n",
    ));
    assert!(e.message.contains("answer_upgrade"), "{e}");
    let e = err_of(&GOOD.replace(
        "  extensions: [udp]\n",
        "  extensions: [{password: {username: a, password: b, layout: draft7}}]\n",
    ));
    assert!(e.message.contains("auto, draft6 or draft5"), "{e}");
}
