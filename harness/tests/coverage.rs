//! `wisp-conformance coverage`, run as a child process: the map of the repository's cases
//! (complete, with the figures the README states), and a small cases directory with a gap,
//! a waiver and a bad claim.

use std::path::Path;
use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wisp-conformance"))
        .args(args)
        .output()
        .expect("the CLI runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("json written")).expect("valid JSON")
}

const REQUIREMENTS: &str = r#"
requirements:
  - id: v1.close.immediate
    text: "Any CLOSE packets sent from either the server or the client must immediately close the associated stream and TCP socket."
    spec: v1.2
    section: 0x04 - CLOSE
    role: both
    level: must
  - id: v1.continue.udp-not-sent
    text: "If the associated stream is a UDP socket, then CONTINUE packets must not be sent."
    spec: v1.2
    section: 0x03 - CONTINUE
    role: server
    level: must-not
  - id: v1.http.url-prefix
    text: "It is up to the server implementation to interpret the prefix."
    spec: v1.2
    section: HTTP Behavior
    role: server
    level: may
    waived: "A free choice of the server: any interpretation conforms."
"#;

const CLIENT_CASE: &str = "\
title: t
spec: s
level: must
covers: [v1.close.immediate]
description: d
client:
  version: v1
server:
  - send: {type: CONTINUE, stream: 0, credit: 128}
expect:
  handshake: ok
";

const SERVER_CASE: &str = "\
role: server
title: t
spec: s
level: must
covers: [v1.close.immediate]
description: d
";

/// A cases directory with one client-role and one server-role case covering the first
/// requirement: the second is a server-side gap, the third is waived.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("requirements.yaml"), REQUIREMENTS).expect("write");
    std::fs::create_dir_all(dir.path().join("streams")).expect("dir");
    std::fs::create_dir_all(dir.path().join("server/close")).expect("dir");
    std::fs::write(dir.path().join("streams/a.yaml"), CLIENT_CASE).expect("write");
    std::fs::write(dir.path().join("server/close/b.yaml"), SERVER_CASE).expect("write");
    dir
}

#[test]
fn a_gap_is_listed_and_exits_1() {
    let dir = scratch();
    let json = dir.path().join("coverage.json");
    let out = cli(&[
        "coverage",
        "--cases",
        path(dir.path()),
        "--json",
        path(&json),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    for line in [
        "v1.close.immediate (must, both; v1.2: 0x04 - CLOSE)\n  client: streams.a\n  server: server.close.b\n",
        "v1.continue.udp-not-sent (must-not, server; v1.2: 0x03 - CONTINUE)\n  server: UNCOVERED\n",
        "  server: waived: A free choice of the server",
        "uncovered (client): none\n",
        "uncovered (server): 1\n  v1.continue.udp-not-sent",
        "  client: 1 covered, 0 waived, 0 uncovered, of 1\n",
        "  server: 1 covered, 1 waived, 1 uncovered, of 3\n",
    ] {
        assert!(shown.contains(line), "{line:?} missing from:\n{shown}");
    }
    let report = read_json(&json);
    assert_eq!(report["complete"], false);
    assert_eq!(
        report["uncovered"]["server"],
        serde_json::json!(["v1.continue.udp-not-sent"])
    );
    assert_eq!(report["uncovered"]["client"], serde_json::json!([]));
    assert_eq!(report["totals"]["server"]["waived"], 1);
    let first = &report["requirements"][0];
    assert_eq!(first["id"], "v1.close.immediate");
    assert_eq!(first["cases"]["client"]["status"], "covered");
    assert_eq!(
        first["cases"]["server"]["cases"],
        serde_json::json!(["server.close.b"])
    );
    assert!(report["requirements"][1]["cases"].get("client").is_none());
    assert_eq!(
        report["requirements"][2]["cases"]["server"]["status"],
        "waived"
    );
}

/// `coverage --html DIR` writes the map as a page: the gap stands out, the waiver is
/// quoted, the covering cases are listed (no run to link them to).
#[test]
fn the_html_page_marks_the_gap() {
    let dir = scratch();
    let site = dir.path().join("site");
    let out = cli(&[
        "coverage",
        "--cases",
        path(dir.path()),
        "--html",
        path(&site),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let page = std::fs::read_to_string(site.join("coverage.html")).expect("coverage.html");
    let row = |id: &str| {
        let at = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no row {id}:\n{page}"));
        let end = page[at..].find("</tr>").expect("row end") + at;
        page[at..end].to_owned()
    };
    assert_eq!(page.matches("<tr class=\"req").count(), 3, "{page}");
    assert_eq!(page.matches("<tr class=\"req gap\"").count(), 1, "{page}");
    let gap = row("v1.continue.udp-not-sent");
    assert!(
        gap.contains("class=\"cases server s-uncovered\">UNCOVERED"),
        "{gap}"
    );
    assert!(gap.contains("class=\"cases client s-n-a\">n/a"), "{gap}");
    let covered = row("v1.close.immediate");
    assert!(
        covered.contains("<span class=\"case\">streams.a</span>"),
        "{covered}"
    );
    assert!(covered.contains("<q>Any CLOSE packets sent"), "{covered}");
    assert!(covered.contains("v1.2: 0x04 - CLOSE"), "{covered}");
    assert!(
        row("v1.http.url-prefix").contains("waived: A free choice of the server"),
        "waiver shown"
    );
    assert!(page.contains("<li class=\"s-uncovered\"><a href=\"#v1.continue.udp-not-sent\">"));
}

#[test]
fn closing_the_gap_exits_0() {
    let dir = scratch();
    std::fs::write(
        dir.path().join("server/close/b.yaml"),
        SERVER_CASE.replace(
            "[v1.close.immediate]",
            "[v1.close.immediate, v1.continue.udp-not-sent]",
        ),
    )
    .expect("write");
    let out = cli(&["coverage", "--cases", path(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("uncovered (server): none"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_bad_claim_or_a_missing_requirements_file_exits_2() {
    let dir = scratch();
    std::fs::write(
        dir.path().join("streams/a.yaml"),
        CLIENT_CASE.replace(
            "[v1.close.immediate]",
            "[v1.close.immediate, v1.continue.udp-not-sent]",
        ),
    )
    .expect("write");
    let out = cli(&["coverage", "--cases", path(dir.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("streams/a.yaml:4:30: covers: requirement \"v1.continue.udp-not-sent\" binds the server side only"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(dir.path().join("requirements.yaml")).expect("rm");
    let out = cli(&["coverage", "--cases", path(dir.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("requirements.yaml:0:0: cannot read"),
        "{}",
        text(&out)
    );
}

/// The repository's map is complete, and the README states its figures.
#[test]
fn the_repository_map_is_complete_and_the_readme_states_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("coverage.json");
    let out = cli(&["coverage", "--json", path(&json)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = read_json(&json);
    assert_eq!(report["complete"], true);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    for role in ["client", "server"] {
        let t = &report["totals"][role];
        let row = format!(
            "| {role} | {} | {} | {} |",
            t["covered"], t["waived"], t["total"]
        );
        assert!(
            readme.contains(&row),
            "README lacks the row {row:?} (its Spec coverage section)"
        );
    }
}
