//! The HTML report, rendered in a real browser: two client-suite runs (the handshake
//! cases, and a hostile case that fails) are written as JSON by the CLI, merged with
//! `wisp-conformance report --html`, and loaded from `file://` in headless Chromium
//! (Debian's `chromium`; `scripts/test.sh` installs it). The test reads the DOM Chromium
//! built (`--dump-dom`): one row per case, one cell per case and run, the FAILED cell
//! links to its page, the page holds the wire trace, and the hostile case's markup stays
//! text; the index links to the spec coverage page, which has one row per requirement
//! with the covering cases linked to their pages. It writes the site and screenshots under
//! `target/tmp/html-report/` (a CI artifact).
//!
//! Without Chromium the test fails under `CI=true` and is skipped (with a message)
//! elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wisp-conformance");

/// A must-level case that fails (it expects no downgrade, the server forces one), with
/// markup in every field a case author or a server controls.
const HOSTILE_CASE: &str = r#"
title: "<script>document.title='pwned'</script> downgrade expected not to happen"
spec: v2 draft 6 §handshake <b>bold</b>
level: must
description: >
  An <img src=x onerror="document.title='pwned'"> in the description must stay text.
client:
  version: v2
  extensions: [udp, motd]
  actions:
    - open: {stream: s1, type: tcp, host: example.com, port: 443}
server:
  - send: {type: CONTINUE, stream: 0, credit: 128}
  - expect: {type: CONNECT, stream: s1, stream_type: tcp, host: example.com, port: 443}
expect:
  handshake: ok
  downgraded: false
"#;

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report")
}

/// Runs a command to completion within `limit`; kills it past that.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(i32, String), String> {
    let what = format!("{cmd:?}");
    let out_path = out_dir().join(format!("stdout-{}.txt", std::process::id()));
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out_path);
    Ok((status.code().unwrap_or(-1), stdout))
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium, headless, on a fresh profile: `args` then the page.
fn browse(chromium: &Path, args: &[String], page: &Path) -> Result<String, String> {
    let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    // Chromium logs D-Bus noise on stderr in containers: kept, shown on failure only.
    let log = profile.path().join("stderr.log");
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    cmd.stderr(log_file);
    let (code, stdout) = run_bounded(&mut cmd, Duration::from_secs(90))?;
    if code != 0 {
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("chromium exited with {code}:\n{stderr}"));
    }
    Ok(stdout)
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn html_report_renders_in_chromium() {
    let dir = out_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Run 1: the handshake cases, as shipped.
    let a = dir.join("handshake.json");
    let (code, _) = run_bounded(
        Command::new(BIN)
            .args(["--filter", "handshake", "--json"])
            .arg(&a),
        Duration::from_secs(300),
    )
    .unwrap();
    assert_eq!(code, 0, "the handshake cases pass");

    // Run 2: a hostile case that fails; its own run also writes a site with --html.
    let cases = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cases.path().join("hostile")).unwrap();
    std::fs::write(cases.path().join("hostile/downgrade.yaml"), HOSTILE_CASE).unwrap();
    let b = dir.join("hostile.json");
    let single = dir.join("single");
    let (code, _) = run_bounded(
        Command::new(BIN)
            .arg("--cases")
            .arg(cases.path())
            .arg("--json")
            .arg(&b)
            .arg("--html")
            .arg(&single),
        Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(code, 1, "the hostile case fails the gate");
    assert!(single.join("index.html").is_file(), "--html wrote a site");
    let b_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&b).unwrap()).unwrap();
    let handshake_cases = {
        let a_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
        a_json["cases"].as_array().unwrap().len()
    };
    assert!(handshake_cases >= 10, "{handshake_cases} handshake cases");
    assert_eq!(b_json["cases"][0]["verdict"], "FAILED");

    // The merged matrix.
    let site = dir.join("site");
    let (code, _) = run_bounded(
        Command::new(BIN)
            .args(["report", "--html"])
            .arg(&site)
            .arg(format!("ours={}", a.display()))
            .arg(&b),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, 0, "report merges the runs");
    let index = site.join("index.html");
    let raw = std::fs::read_to_string(&index).unwrap();
    assert!(!raw.contains("<script"), "no script element in the index");
    assert!(!raw.contains("<img"), "no img element in the index");

    let Some(chromium) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "chromium is not installed (scripts/test.sh installs it: apt-get install chromium)"
            );
        }
        eprintln!(
            "SKIPPED: chromium not found (apt-get install chromium); the site is at {}",
            index.display()
        );
        return;
    };

    let dom = browse(&chromium, &["--dump-dom".to_owned()], &index).unwrap();
    let rows = count(&dom, "<tr class=\"case\"");
    assert_eq!(rows, handshake_cases + 1, "one row per case:\n{dom}");
    let cells = count(&dom, "<td class=\"cell ");
    assert_eq!(cells, rows * 2, "one cell per case and run");
    assert_eq!(count(&dom, "<th class=\"run\""), 2, "two run columns");
    assert!(
        dom.contains("<th class=\"run\">ours</th>"),
        "NAME=FILE names the column"
    );
    // Two topics: handshake and hostile.
    assert_eq!(count(&dom, "<tr class=\"topic\""), 2);
    assert!(
        !dom.contains("pwned</title>") && dom.contains("<title>Wisp conformance report</title>")
    );

    // The FAILED cell links to its page.
    let failed = dom
        .find("<td class=\"cell v-failed")
        .expect("a FAILED cell");
    let href_at = dom[failed..].find("href=\"").unwrap() + failed + 6;
    let href = &dom[href_at..href_at + dom[href_at..].find('"').unwrap()];
    assert_eq!(href, "runs/1/hostile.downgrade.html");
    let page_path = site.join(href);
    let page = browse(&chromium, &["--dump-dom".to_owned()], &page_path).unwrap();
    let trace_at = page
        .find("<pre class=\"trace\">")
        .expect("a trace on the page");
    let trace = &page[trace_at..];
    for line in b_json["cases"][0]["trace"].as_array().unwrap() {
        let line = line.as_str().unwrap();
        let escaped = line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(trace.contains(&escaped), "the page's trace lacks {line:?}");
    }
    assert!(
        page.contains("downgraded: false"),
        "the expectation is shown"
    );
    assert!(page.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"));
    assert!(page.contains("&lt;img src=x onerror="));
    assert!(!page.contains("<img") && !page.contains("pwned</title>"));

    // The coverage page: linked from the index, one row per requirement, covering cases
    // linked to their pages in the runs (the handshake cases ran in run 0).
    assert!(
        dom.contains("<a id=\"coverage-link\" href=\"coverage.html\">"),
        "the index links to the coverage page"
    );
    let coverage_path = site.join("coverage.html");
    let requirements = {
        let json = dir.join("coverage.json");
        let (code, _) = run_bounded(
            Command::new(BIN).arg("coverage").arg("--json").arg(&json),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(code, 0, "the repository's map is complete");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        v["requirements"].as_array().unwrap().clone()
    };
    let coverage = browse(&chromium, &["--dump-dom".to_owned()], &coverage_path).unwrap();
    assert_eq!(
        count(&coverage, "<tr class=\"req"),
        requirements.len(),
        "one row per requirement"
    );
    assert_eq!(count(&coverage, "<tr class=\"req gap\""), 0, "no gaps");
    let handshake_links = count(&coverage, "<a href=\"runs/0/handshake.");
    assert!(
        handshake_links >= handshake_cases,
        "{handshake_links} links"
    );
    let covered_by_handshake = requirements
        .iter()
        .find(|r| {
            r["cases"]["client"]["cases"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.as_str().unwrap().starts_with("handshake."))
            })
        })
        .expect("a requirement the handshake cases check");
    let id = covered_by_handshake["id"].as_str().unwrap();
    let at = coverage.find(&format!("id=\"{id}\"")).unwrap();
    let row = &coverage[at..at + coverage[at..].find("</tr>").unwrap()];
    let text = covered_by_handshake["text"]
        .as_str()
        .unwrap()
        .replace('&', "&amp;");
    assert!(
        row.contains(&text.replace('<', "&lt;").replace('>', "&gt;")),
        "{row}"
    );
    assert!(row.contains("<a href=\"runs/0/handshake."), "{row}");

    // Screenshots: the CI artifacts.
    for (page, png) in [
        (&index, "index.png"),
        (&page_path, "failed-case.png"),
        (&coverage_path, "coverage.png"),
    ] {
        let shot = dir.join(png);
        browse(
            &chromium,
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=1400,1700".to_owned(),
            ],
            page,
        )
        .unwrap();
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{} is {len} bytes", shot.display());
    }
    eprintln!("HTML report and screenshots under {}", dir.display());
}
