//! The requirements file and the coverage map: schema and consistency errors with their
//! place, the `covers:` lists the loader checks against the file, the map per role, and
//! the repository's own file and cases (every requirement covered or waived).

use std::path::{Path, PathBuf};

use wisp_cases::requirements::{Level, Requirements, Side, Spec, Status, Totals};
use wisp_cases::{Case, LoadError, REQUIREMENTS_FILE, Role, case_id, load_case_str, load_dir};

const GOOD: &str = r#"
requirements:
  - id: v1.close.immediate
    text: "Any CLOSE packets sent from either the server or the client must immediately close the associated stream and TCP socket."
    spec: v1.2
    also_in: [v2-draft6]
    section: 0x04 - CLOSE
    role: both
    level: must
  - id: v1.continue.store
    text: "When the client receives a CONTINUE packet from the server, it must store the received buffer size."
    spec: v1.2
    section: 0x03 - CONTINUE
    role: client
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
    waived: "any interpretation conforms"
  - id: defacto.close.no-reply
    text: "No implementation answers a received CLOSE with a CLOSE."
    spec: de-facto
    section: wisp-protocol.md §3
    role: both
    level: should
    note: "a remark"
"#;

fn parse(src: &str) -> Result<Requirements, Vec<LoadError>> {
    Requirements::parse(Path::new("requirements.yaml"), src)
}

fn problems(src: &str) -> Vec<LoadError> {
    match parse(src) {
        Ok(_) => panic!("expected the file to be rejected"),
        Err(e) => e,
    }
}

fn one_problem(src: &str) -> LoadError {
    let mut p = problems(src);
    assert_eq!(p.len(), 1, "expected one problem, got {p:?}");
    p.remove(0)
}

#[test]
fn a_valid_file_loads_in_order_with_every_field() {
    let reqs = parse(GOOD).expect("loads");
    assert_eq!(reqs.len(), 5);
    assert!(!reqs.is_empty());
    let ids: Vec<&str> = reqs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "v1.close.immediate",
            "v1.continue.store",
            "v1.continue.udp-not-sent",
            "v1.http.url-prefix",
            "defacto.close.no-reply"
        ]
    );
    let close = reqs.get("v1.close.immediate").expect("by id");
    assert_eq!(close.spec, Spec::V1_2);
    assert_eq!(close.also_in, [Spec::V2Draft6]);
    assert_eq!(close.section, "0x04 - CLOSE");
    assert_eq!(close.role, Side::Both);
    assert_eq!(close.level, Level::Must);
    assert_eq!(close.line, 3);
    assert_eq!(
        reqs.get("v1.continue.udp-not-sent").map(|r| r.level),
        Some(Level::MustNot)
    );
    assert_eq!(
        reqs.get("v1.http.url-prefix")
            .and_then(|r| r.waived.as_deref()),
        Some("any interpretation conforms")
    );
    assert_eq!(
        reqs.get("defacto.close.no-reply")
            .and_then(|r| r.note.as_deref()),
        Some("a remark")
    );
    assert!(reqs.get("v1.close").is_none());
    assert_eq!((&reqs).into_iter().count(), 5);
    assert_eq!(reqs.path(), Path::new("requirements.yaml"));
}

#[test]
fn an_unknown_key_is_rejected_with_its_line() {
    let src = GOOD.replace(
        "    level: must\n  - id: v1.continue.store",
        "    level: must\n    levle: must\n  - id: v1.continue.store",
    );
    let p = one_problem(&src);
    assert!(p.message.contains("levle"), "{p}");
    assert_eq!(p.line, 10, "{p}");
}

#[test]
fn an_unknown_top_level_key_is_rejected() {
    let p = one_problem(&format!("{GOOD}extra: 1\n"));
    assert!(p.message.contains("extra"), "{p}");
}

#[test]
fn a_value_outside_its_set_is_rejected() {
    let p = one_problem(&GOOD.replace("level: must-not", "level: MUST NOT"));
    assert!(p.line > 0, "{p}");
    let p = one_problem(&GOOD.replace("spec: de-facto", "spec: v3"));
    assert!(p.line > 0, "{p}");
    let p = one_problem(&GOOD.replace("role: client", "role: proxy"));
    assert!(p.line > 0, "{p}");
}

#[test]
fn a_missing_field_is_rejected() {
    let p = one_problem(&GOOD.replace(
        "    section: 0x03 - CONTINUE\n    role: client\n",
        "    role: client\n",
    ));
    assert!(p.message.contains("section"), "{p}");
}

#[test]
fn a_duplicate_id_is_rejected_naming_the_first() {
    let src = GOOD.replace("id: v1.continue.store", "id: v1.close.immediate");
    let p = one_problem(&src);
    assert!(p.message.contains("duplicate"), "{p}");
    assert!(p.message.contains("line 3"), "{p}");
    assert_eq!((p.line, p.column), (10, 9), "{p}");
    assert!(
        p.snippet
            .as_deref()
            .is_some_and(|s| s.contains("id: v1.close.immediate")),
        "{p}"
    );
}

#[test]
fn malformed_ids_are_rejected() {
    for bad in [
        "V1.close.immediate",
        "v1..immediate",
        "v1.close.",
        "v1.close.imm ediate",
        "v1.close.-immediate",
        "v1.close.imm--ediate",
        "v1.close.imm_ediate",
        "v1.close",
        "v2.close.immediate",
        "defacto.close.immediate",
    ] {
        let src = GOOD.replace("id: v1.close.immediate", &format!("id: \"{bad}\""));
        let p = one_problem(&src);
        assert!(p.message.contains("requirement ID"), "{bad}: {p}");
        assert_eq!(p.line, 3, "{bad}: {p}");
    }
}

#[test]
fn the_id_prefix_follows_the_spec() {
    let p = one_problem(&GOOD.replace("id: defacto.close.no-reply", "id: v1.close.no-reply"));
    assert!(p.message.contains("must start with `defacto.`"), "{p}");
}

#[test]
fn empty_text_section_waiver_and_note_are_rejected() {
    let src = GOOD
        .replace(
            "text: \"No implementation answers a received CLOSE with a CLOSE.\"",
            "text: \"  \"",
        )
        .replace("section: HTTP Behavior", "section: \"\"")
        .replace("waived: \"any interpretation conforms\"", "waived: \"\"")
        .replace("note: \"a remark\"", "note: \" \"");
    let p = problems(&src);
    let messages: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(p.len(), 4, "{messages:?}");
    for field in ["`text`", "`section`", "`waived`", "`note`"] {
        assert!(
            messages.iter().any(|m| m.contains(field)),
            "{field}: {messages:?}"
        );
    }
}

#[test]
fn also_in_must_name_other_spec_versions_once() {
    let p = one_problem(&GOOD.replace("also_in: [v2-draft6]", "also_in: [v1.2]"));
    assert!(p.message.contains("also_in"), "{p}");
    let p = one_problem(&GOOD.replace("also_in: [v2-draft6]", "also_in: [de-facto]"));
    assert!(p.message.contains("de-facto"), "{p}");
    let p = one_problem(&GOOD.replace("also_in: [v2-draft6]", "also_in: [v2-draft6, v2-draft6]"));
    assert!(p.message.contains("repeats"), "{p}");
}

#[test]
fn every_inconsistency_is_reported_at_once() {
    let src = GOOD
        .replace("id: v1.continue.store", "id: v1.close.immediate")
        .replace("id: defacto.close.no-reply", "id: Bad");
    let p = problems(&src);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].to_string().starts_with("requirements.yaml:10:"),
        "{}",
        p[0]
    );
    assert!(p[1].line > p[0].line, "{p:?}");
}

#[test]
fn an_empty_list_and_broken_yaml_are_rejected() {
    let p = one_problem("requirements: []\n");
    assert!(p.message.contains("no requirement"), "{p}");
    let p = one_problem("requirements:\n  - id: [unclosed\n");
    assert!(p.line > 0, "{p}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let e = Requirements::load(Path::new("/nonexistent/requirements.yaml")).unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string()
            .starts_with("/nonexistent/requirements.yaml:0:0: cannot read"),
        "{}",
        e[0]
    );
}

#[test]
fn a_side_binds_the_roles_it_names() {
    assert!(Side::Both.binds(Role::Client) && Side::Both.binds(Role::Server));
    assert!(Side::Client.binds(Role::Client) && !Side::Client.binds(Role::Server));
    assert!(Side::Server.binds(Role::Server) && !Side::Server.binds(Role::Client));
}

#[test]
fn a_claim_needs_a_known_binding_unwaived_requirement() {
    let reqs = parse(GOOD).expect("loads");
    assert!(reqs.claim("v1.continue.store", Role::Client).is_ok());
    assert!(reqs.claim("v1.close.immediate", Role::Server).is_ok());
    let why = reqs.claim("v1.close.immedate", Role::Client).unwrap_err();
    assert!(
        why.contains("no requirement \"v1.close.immedate\""),
        "{why}"
    );
    let why = reqs.claim("v1.continue.store", Role::Server).unwrap_err();
    assert!(
        why.contains("binds the client side only; this is a server-role case"),
        "{why}"
    );
    let why = reqs.claim("v1.http.url-prefix", Role::Server).unwrap_err();
    assert!(why.contains("is waived"), "{why}");
}

fn covers(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn coverage_lists_cases_per_role_and_counts_each_role() {
    let reqs = parse(GOOD).expect("loads");
    let a = covers(&["v1.close.immediate", "v1.continue.store"]);
    let b = covers(&["v1.close.immediate"]);
    let c = covers(&["v1.close.immediate", "defacto.close.no-reply"]);
    let none = covers(&[]);
    let map = reqs
        .coverage([
            ("streams.b", Role::Client, &b),
            ("streams.a", Role::Client, &a),
            ("server.close.c", Role::Server, &c),
            ("sanity.none", Role::Client, &none),
        ])
        .expect("consistent");
    assert_eq!(map.requirements, Path::new("requirements.yaml"));
    let close = map.get("v1.close.immediate").expect("entry");
    assert_eq!(close.client, ["streams.a", "streams.b"]);
    assert_eq!(close.server, ["server.close.c"]);
    assert_eq!(close.status(Role::Client), Status::Covered);
    assert_eq!(close.cases(Role::Server), ["server.close.c"]);

    let udp = map.get("v1.continue.udp-not-sent").expect("entry");
    assert_eq!(udp.status(Role::Server), Status::Uncovered);
    assert_eq!(udp.status(Role::Client), Status::NotApplicable);
    let prefix = map.get("v1.http.url-prefix").expect("entry");
    assert_eq!(prefix.status(Role::Server), Status::Waived);
    let no_reply = map.get("defacto.close.no-reply").expect("entry");
    assert_eq!(no_reply.status(Role::Client), Status::Uncovered);
    assert_eq!(no_reply.status(Role::Server), Status::Covered);

    assert_eq!(
        map.totals(Role::Client),
        Totals {
            covered: 2,
            waived: 0,
            uncovered: 1,
            total: 3
        }
    );
    assert_eq!(
        map.totals(Role::Server),
        Totals {
            covered: 2,
            waived: 1,
            uncovered: 1,
            total: 4
        }
    );
    assert_eq!(
        map.totals(Role::Server).to_string(),
        "2 covered, 1 waived, 1 uncovered, of 4"
    );
    let gaps: Vec<&str> = map
        .uncovered(Role::Server)
        .map(|e| e.requirement.id.as_str())
        .collect();
    assert_eq!(gaps, ["v1.continue.udp-not-sent"]);
    assert!(!map.complete());
    let waived: Vec<&str> = map
        .waived(Role::Server)
        .map(|e| e.requirement.id.as_str())
        .collect();
    assert_eq!(waived, ["v1.http.url-prefix"]);
    assert_eq!(map.waived(Role::Client).count(), 0);
    assert_eq!(map.cases_without_covers, ["sanity.none"]);
    assert_eq!(map.entries.len(), reqs.len());
}

#[test]
fn coverage_is_complete_when_every_gap_is_closed() {
    let reqs = parse(GOOD).expect("loads");
    let client = covers(&["v1.continue.store", "defacto.close.no-reply"]);
    let server = covers(&["v1.close.immediate", "v1.continue.udp-not-sent"]);
    let map = reqs
        .coverage([
            ("streams.x", Role::Client, &client),
            ("server.y.z", Role::Server, &server),
            ("streams.w", Role::Client, &covers(&["v1.close.immediate"])),
            (
                "server.y.n",
                Role::Server,
                &covers(&["defacto.close.no-reply"]),
            ),
        ])
        .expect("consistent");
    assert!(map.complete());
    assert_eq!(map.totals(Role::Server).waived, 1);
}

#[test]
fn coverage_rejects_unknown_mismatched_waived_and_repeated_ids() {
    let reqs = parse(GOOD).expect("loads");
    let bad_client = covers(&[
        "v1.close.immedate",
        "v1.continue.udp-not-sent",
        "v1.close.immediate",
        "v1.close.immediate",
    ]);
    let bad_server = covers(&["v1.continue.store", "v1.http.url-prefix"]);
    let err = reqs
        .coverage([
            ("streams.x", Role::Client, &bad_client),
            ("server.y", Role::Server, &bad_server),
        ])
        .unwrap_err();
    let got: Vec<(&str, &str)> = err
        .problems
        .iter()
        .map(|p| (p.case.as_str(), p.requirement.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("streams.x", "v1.close.immedate"),
            ("streams.x", "v1.continue.udp-not-sent"),
            ("streams.x", "v1.close.immediate"),
            ("server.y", "v1.continue.store"),
            ("server.y", "v1.http.url-prefix"),
        ]
    );
    let shown = err.to_string();
    assert!(
        shown.contains("streams.x: covers v1.close.immedate: no requirement"),
        "{shown}"
    );
    assert!(
        shown.contains("server side only; this is a client-role case"),
        "{shown}"
    );
    assert!(shown.contains("listed twice"), "{shown}");
    assert!(
        shown.contains("client side only; this is a server-role case"),
        "{shown}"
    );
    assert!(shown.contains("is waived"), "{shown}");
}

// ---------------------------------------------------------------- `covers:` in case files

const CASE: &str = "\
title: t
spec: s
level: must
covers: [v1.close.immediate, v1.continue.store]
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

fn load_one(src: &str) -> Result<Case, LoadError> {
    load_case_str(
        Path::new("/cases"),
        Path::new("/cases/streams/sample.yaml"),
        src,
    )
}

#[test]
fn covers_is_read_into_the_header_with_its_places() {
    let case = load_one(CASE).expect("loads");
    let ids: Vec<&str> = case.meta().covered_ids().collect();
    assert_eq!(ids, ["v1.close.immediate", "v1.continue.store"]);
    let first = &case.meta().covers[0];
    assert_eq!(
        (first.referenced.line(), first.referenced.column()),
        (4, 10)
    );
    // Without a requirements file to check against, one file loads without the list.
    let case = load_one(&CASE.replace("covers: [v1.close.immediate, v1.continue.store]\n", ""))
        .expect("loads");
    assert!(case.meta().covers.is_empty());
}

#[test]
fn an_empty_or_repeating_covers_list_is_a_located_error() {
    let e = load_one(&CASE.replace("[v1.close.immediate, v1.continue.store]", "[]"))
        .expect_err("empty");
    assert_eq!((e.line, e.column), (4, 9), "{e}");
    assert!(e.message.contains("`covers` is empty"), "{e}");
    let e =
        load_one(&CASE.replace("v1.continue.store]", "v1.close.immediate]")).expect_err("twice");
    assert_eq!((e.line, e.column), (4, 30), "{e}");
    assert!(e.message.contains("twice"), "{e}");
    let e = load_one(&CASE.replace("v1.continue.store]", "\" \"]")).expect_err("blank");
    assert!(e.message.contains("empty requirement ID"), "{e}");
    let e = load_one(&CASE.replace("[v1.close.immediate, v1.continue.store]", "v1.close"))
        .expect_err("not a list");
    assert_eq!(e.line, 4, "{e}");
}

/// A cases directory in a temporary folder: the requirements file and these cases.
fn cases_dir(requirements: Option<&str>, cases: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    if let Some(r) = requirements {
        std::fs::write(dir.path().join(REQUIREMENTS_FILE), r).expect("write");
    }
    for (rel, src) in cases {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, src).expect("write");
    }
    dir
}

fn only_error(dir: &Path) -> LoadError {
    let (cases, mut errors) = load_dir(dir);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        cases.is_empty(),
        "{:?}",
        cases.iter().map(Case::id).collect::<Vec<_>>()
    );
    errors.remove(0)
}

#[test]
fn the_requirements_file_is_not_a_case_and_checks_the_cases() {
    let dir = cases_dir(
        Some(GOOD),
        &[
            ("streams/sample.yaml", CASE),
            ("server/close/sample.yaml", SERVER_CASE),
        ],
    );
    let (cases, errors) = load_dir(dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    let ids: Vec<&str> = cases.iter().map(Case::id).collect();
    assert_eq!(ids, ["server.close.sample", "streams.sample"]);
    // Loaded alone, the root file is named for what it is.
    let e = case_id(Path::new(REQUIREMENTS_FILE)).unwrap_err();
    assert!(e.contains("is the requirements file, not a case"), "{e}");
    // Any other YAML file at the root is still an error: cases live in topic folders.
    std::fs::write(dir.path().join("stray.yaml"), CASE).expect("write");
    let e = only_error_among(dir.path(), 2);
    assert!(e.message.contains("topic folder"), "{e}");
}

fn only_error_among(dir: &Path, cases: usize) -> LoadError {
    let (loaded, mut errors) = load_dir(dir);
    assert_eq!(loaded.len(), cases);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn an_unknown_requirement_is_a_load_error_at_its_place() {
    let src = CASE.replace("v1.continue.store]", "v1.continue.stroe]");
    let dir = cases_dir(Some(GOOD), &[("streams/sample.yaml", &src)]);
    let e = only_error(dir.path());
    assert_eq!((e.line, e.column), (4, 30), "{e}");
    assert!(
        e.message.contains("no requirement \"v1.continue.stroe\""),
        "{e}"
    );
    assert!(e.path.ends_with("streams/sample.yaml"), "{e}");
    assert!(
        e.snippet.as_deref().is_some_and(|s| s.contains("covers:")),
        "{e}"
    );
}

#[test]
fn a_requirement_of_the_other_side_is_a_load_error() {
    let dir = cases_dir(
        Some(GOOD),
        &[(
            "server/close/sample.yaml",
            &SERVER_CASE.replace(
                "[v1.close.immediate]",
                "[v1.close.immediate, v1.continue.store]",
            ),
        )],
    );
    let e = only_error(dir.path());
    assert_eq!((e.line, e.column), (5, 30), "{e}");
    assert!(
        e.message
            .contains("binds the client side only; this is a server-role case"),
        "{e}"
    );
    let dir = cases_dir(
        Some(GOOD),
        &[(
            "streams/sample.yaml",
            &CASE.replace("v1.continue.store]", "v1.continue.udp-not-sent]"),
        )],
    );
    let e = only_error(dir.path());
    assert!(e.message.contains("binds the server side only"), "{e}");
    let dir = cases_dir(
        Some(GOOD),
        &[(
            "server/close/sample.yaml",
            &SERVER_CASE.replace("[v1.close.immediate]", "[v1.http.url-prefix]"),
        )],
    );
    assert!(only_error(dir.path()).message.contains("is waived"));
}

#[test]
fn a_case_without_covers_is_a_load_error_where_requirements_exist() {
    let bare = CASE.replace("covers: [v1.close.immediate, v1.continue.store]\n", "");
    let dir = cases_dir(Some(GOOD), &[("streams/sample.yaml", &bare)]);
    let e = only_error(dir.path());
    assert!(e.message.contains("no `covers:` list"), "{e}");
    // A scratch directory of one's own cases has nothing to check against.
    let dir = cases_dir(None, &[("streams/sample.yaml", &bare)]);
    let (cases, errors) = load_dir(dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(cases.len(), 1);
}

#[test]
fn a_broken_requirements_file_is_reported_and_the_cases_still_load() {
    let dir = cases_dir(
        Some(&GOOD.replace("level: must-not", "level: never")),
        &[("streams/sample.yaml", CASE)],
    );
    let (cases, errors) = load_dir(dir.path());
    assert_eq!(cases.len(), 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].path.ends_with(REQUIREMENTS_FILE), "{}", errors[0]);
    assert!(errors[0].line > 0, "{}", errors[0]);
}

// ---------------------------------------------------------------- the repository's files

fn repo_cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// The repository's file: loads, and every source and role is represented.
#[test]
fn the_repository_requirements_file_is_valid() {
    let path = repo_cases().join(REQUIREMENTS_FILE);
    let reqs = Requirements::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    for spec in [Spec::V1_2, Spec::V2Draft6, Spec::DeFacto] {
        assert!(reqs.iter().any(|r| r.spec == spec), "no {spec} requirement");
    }
    for side in [Side::Client, Side::Server, Side::Both] {
        assert!(
            reqs.iter().any(|r| r.role == side),
            "no {side:?} requirement"
        );
    }
    for r in &reqs {
        if let Some(w) = &r.waived {
            assert!(
                w.len() > 40,
                "{}: a waiver needs a real reason: {w:?}",
                r.id
            );
        }
    }
}

/// Every requirement is checked by a case of each role it binds, or waived with a reason.
#[test]
fn every_requirement_is_covered_or_waived() {
    let dir = repo_cases();
    let (cases, errors) = load_dir(&dir);
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{}", shown.join("\n"));
    let reqs = Requirements::load(&dir.join(REQUIREMENTS_FILE)).expect("loads");
    let map = reqs
        .coverage_of(&cases)
        .expect("the loader checked every claim");
    assert!(map.cases_without_covers.is_empty());
    let gaps: Vec<String> = [Role::Client, Role::Server]
        .into_iter()
        .flat_map(|role| {
            map.uncovered(role).map(move |e| {
                format!(
                    "{} ({}): {}",
                    e.requirement.id,
                    role.name(),
                    e.requirement.text
                )
            })
        })
        .collect();
    assert!(
        gaps.is_empty(),
        "{} requirements are neither covered nor waived: add a case that checks each, or \
         waive it in cases/requirements.yaml with the reason no case can:\n{}",
        gaps.len(),
        gaps.join("\n")
    );
}
