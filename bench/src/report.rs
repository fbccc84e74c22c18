//! The Markdown report: throughput with ratios, fairness, stream-open latency, idle-stream
//! memory and open rate, integrity, and the targets.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::Report;
use crate::RunResult;

/// Median, minimum and maximum of `v` (NaN when empty).
pub fn median_min_max(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let mid = s.len() / 2;
    let median = if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    };
    (median, s[0], s[s.len() - 1])
}

fn size_name(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// The runs by (client, streams, size), with the clients in the order they first ran and
/// the stream counts and sizes measured.
struct Index<'a> {
    by_key: BTreeMap<(String, usize, usize), Vec<&'a RunResult>>,
    clients: Vec<String>,
    series: Vec<usize>,
    sizes: Vec<usize>,
    /// The series the raw senders ran in (the first).
    raw_streams: usize,
}

impl<'a> Index<'a> {
    fn new(report: &'a Report) -> Self {
        let mut by_key: BTreeMap<_, Vec<_>> = BTreeMap::new();
        let mut clients: Vec<String> = Vec::new();
        for r in &report.runs {
            by_key
                .entry((r.client.clone(), r.streams, r.size))
                .or_default()
                .push(r);
            if !clients.contains(&r.client) {
                clients.push(r.client.clone());
            }
        }
        let mut series: Vec<usize> = report.runs.iter().map(|r| r.streams).collect();
        series.sort_unstable();
        series.dedup();
        let mut sizes: Vec<usize> = report.runs.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        Self {
            by_key,
            clients,
            raw_streams: series.first().copied().unwrap_or(1),
            series,
            sizes,
        }
    }

    fn runs(&self, client: &str, streams: usize, size: usize) -> &[&'a RunResult] {
        self.by_key
            .get(&(client.to_owned(), streams, size))
            .map_or(&[], Vec::as_slice)
    }

    /// The runs compared in the `streams` series: a raw client's are its one-stream runs
    /// (it has no streams), in every series.
    fn series_runs(&self, client: &str, streams: usize, size: usize) -> &[&'a RunResult] {
        let s = if client.starts_with("raw") {
            self.raw_streams
        } else {
            streams
        };
        self.runs(client, s, size)
    }

    /// The MiB/s of [`Index::series_runs`], in the order they ran.
    fn mib_s(&self, client: &str, streams: usize, size: usize) -> Vec<f64> {
        self.series_runs(client, streams, size)
            .iter()
            .map(|r| r.mib_s)
            .collect()
    }

    /// Median MiB/s; raw is looked up in its one-stream runs for every series.
    fn median(&self, client: &str, streams: usize, size: usize) -> f64 {
        median_min_max(&self.mib_s(client, streams, size)).0
    }

    /// Run by run, `a`'s MiB/s over `b`'s: the i-th run of one over the i-th of the other.
    /// The clients' runs alternate within a series (ours, wisp-mux, raw-best, …, ours, …),
    /// so in the first series each pair ran seconds apart and a drift of the machine
    /// cancels out of its ratio; a raw client's runs are those of the first series.
    fn run_ratios(&self, a: &str, b: &str, streams: usize, size: usize) -> Vec<f64> {
        let xs = self.series_runs(a, streams, size);
        let ys = self.series_runs(b, streams, size);
        xs.iter()
            .zip(ys)
            .filter(|(_, y)| y.mib_s > 0.0)
            .map(|(x, y)| x.mib_s / y.mib_s)
            .collect()
    }

    fn cell(&self, client: &str, streams: usize, size: usize) -> String {
        let v = self.mib_s(client, streams, size);
        if v.is_empty() {
            return "—".into();
        }
        let (m, lo, hi) = median_min_max(&v);
        format!("{m:.0} ({lo:.0}–{hi:.0})")
    }
}

/// The throughput ratios the report gives, numerator and denominator, in column order.
pub const RATIOS: [(&str, &str); 7] = [
    ("ours", "raw-best"),
    ("ours", "raw"),
    ("ours", "wisp-mux"),
    ("wisp-mux", "raw-best"),
    ("wisp-mux", "raw"),
    ("raw", "raw-best"),
    ("ours", "raw-default"),
];

/// One (streams, payload) cell of the throughput table: each client's median MiB/s (the
/// raw clients' from their one-stream runs) and the ratios of [`RATIOS`].
#[derive(Clone, Debug, Serialize)]
pub struct SummaryRow {
    /// Bulk streams of the multiplexing clients.
    pub streams: usize,
    /// Payload length.
    pub size: usize,
    /// Median MiB/s by client.
    pub median_mib_s: BTreeMap<String, f64>,
    /// `"a / b"` → median of a / median of b, for the pairs of [`RATIOS`] both measured.
    pub ratios: BTreeMap<String, f64>,
    /// `"a / b"` → the ratio run by run (run i of a over run i of b), for the same pairs:
    /// how far the ratio moved within the invocation.
    pub run_ratios: BTreeMap<String, Vec<f64>>,
}

impl SummaryRow {
    /// Median of `a` over median of `b`, when both were measured.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        self.ratios.get(&format!("{a} / {b}")).copied()
    }

    /// The smallest and largest run-by-run ratio of `a` over `b`, when there is one.
    pub fn run_ratio_range(&self, a: &str, b: &str) -> Option<(f64, f64)> {
        let v = self.run_ratios.get(&format!("{a} / {b}"))?;
        let (_, lo, hi) = median_min_max(v);
        (!v.is_empty()).then_some((lo, hi))
    }
}

/// The throughput table's medians and ratios, by series and payload size (also written to
/// the JSON results).
pub fn summary(report: &Report) -> Vec<SummaryRow> {
    let idx = Index::new(report);
    let mut rows = Vec::new();
    for &streams in &idx.series {
        for &size in &idx.sizes {
            let median_mib_s: BTreeMap<String, f64> = idx
                .clients
                .iter()
                .map(|c| (c.clone(), idx.median(c, streams, size)))
                .filter(|(_, m)| !m.is_nan())
                .collect();
            let ratios = RATIOS
                .iter()
                .filter_map(|&(a, b)| {
                    let (x, y) = (median_mib_s.get(a)?, median_mib_s.get(b)?);
                    (*y > 0.0).then(|| (format!("{a} / {b}"), x / y))
                })
                .collect();
            let run_ratios = RATIOS
                .iter()
                .map(|&(a, b)| (format!("{a} / {b}"), idx.run_ratios(a, b, streams, size)))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            rows.push(SummaryRow {
                streams,
                size,
                median_mib_s,
                ratios,
                run_ratios,
            });
        }
    }
    rows
}

/// A ratio target's "measured" cell: the ratio of the medians, with the run-by-run range
/// when there is one, and a note when the runs fall on both sides of `bound` (the verdict,
/// taken on the medians, is then within this invocation's noise).
fn ratio_measured(r: f64, range: Option<(f64, f64)>, bound: f64) -> String {
    match range {
        Some((lo, hi)) if lo < bound && hi >= bound => {
            format!("{r:.2}x (runs {lo:.2}–{hi:.2}: on both sides of {bound}x)")
        }
        Some((lo, hi)) => format!("{r:.2}x (runs {lo:.2}–{hi:.2})"),
        None => format!("{r:.2}x"),
    }
}

/// Renders the report as Markdown.
pub fn markdown(report: &Report) -> String {
    let idx = Index::new(report);
    let (clients, series, sizes) = (idx.clients.clone(), idx.series.clone(), idx.sizes.clone());
    let has = |c: &str| clients.iter().any(|x| x == c);

    let pairs: Vec<(&str, &str)> = RATIOS
        .iter()
        .copied()
        .filter(|(a, b)| has(a) && has(b))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Throughput (MiB/s delivered to the server: median of runs, min–max)\n"
    );
    let ratio_heads: Vec<String> = pairs.iter().map(|(a, b)| format!("{a} / {b}")).collect();
    let _ = writeln!(
        out,
        "| streams | payload | {} | {} |",
        clients.join(" | "),
        ratio_heads.join(" | ")
    );
    let _ = writeln!(
        out,
        "|---|---|{}",
        "---|".repeat(clients.len() + pairs.len())
    );
    for row in summary(report) {
        let cells: Vec<String> = clients
            .iter()
            .map(|c| idx.cell(c, row.streams, row.size))
            .collect();
        let ratios: Vec<String> = pairs
            .iter()
            .map(|&(a, b)| {
                row.ratio(a, b)
                    .map_or_else(|| "—".into(), |r| format!("{r:.2}x"))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.streams,
            size_name(row.size),
            cells.join(" | "),
            ratios.join(" | ")
        );
    }
    let _ = writeln!(
        out,
        "\nThe raw clients are one sender on one connection; they have no streams, so every \
         series is compared with their one-stream figure. `raw-best` sends ours' Wisp DATA \
         framing with the least work the wire allows (frames encoded into one reused buffer, \
         written at ours' 64 KiB flush threshold); `raw` feeds bare binary messages through \
         tokio-websockets' `Sink` with the transport settings ours uses (flush threshold \
         `wisp_client::transport::FLUSH_THRESHOLD`, 64 KiB); `raw-default` uses \
         tokio-websockets' defaults (8 KiB).\n"
    );

    // How far the ratios the targets use moved from run to run.
    let spread_pairs: Vec<(&str, &str)> = [("ours", "raw-best"), ("ours", "wisp-mux")]
        .into_iter()
        .filter(|(a, b)| has(a) && has(b))
        .collect();
    if !spread_pairs.is_empty() {
        let _ = writeln!(
            out,
            "### Ratios run by run\n\nRun i of one client over run i of the other, median \
             (min–max) over the runs. The clients' runs alternate within a series, so in the \
             first series each pair ran seconds apart; the raw clients run in the first \
             series only, so in the others a pair is further apart. A target whose runs fall \
             on both sides of it is marked in the targets table.\n"
        );
        let heads: Vec<String> = spread_pairs
            .iter()
            .map(|(a, b)| format!("{a} / {b}"))
            .collect();
        let _ = writeln!(out, "| streams | payload | {} |", heads.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---|".repeat(spread_pairs.len()));
        for row in summary(report) {
            let cells: Vec<String> = spread_pairs
                .iter()
                .map(|(a, b)| {
                    row.run_ratios.get(&format!("{a} / {b}")).map_or_else(
                        || "—".into(),
                        |v| {
                            let (m, lo, hi) = median_min_max(v);
                            format!("{m:.2}x ({lo:.2}–{hi:.2})")
                        },
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                row.streams,
                size_name(row.size),
                cells.join(" | ")
            );
        }
        let _ = writeln!(out);
    }

    let repeated: u32 = report.runs.iter().map(|r| r.disturbed_attempts).sum();
    let kept_disturbed = report.runs.iter().filter(|r| r.foreign_cpu > 0.25).count();
    let _ = writeln!(
        out,
        "Shared machine: {repeated} attempts were discarded and repeated because other \
         processes used more than 0.25 of a core during the measurement; {kept_disturbed} of \
         the {} runs kept were still disturbed (all retries used).\n",
        report.runs.len()
    );

    let multi: Vec<usize> = series.iter().copied().filter(|&s| s > 1).collect();
    if !multi.is_empty() {
        let _ = writeln!(
            out,
            "### Fairness: smallest per-stream share of the fair rate in a window\n"
        );
        let _ = writeln!(
            out,
            "Per window: min over streams of (stream's bytes) / (all bytes / streams). \
             Worst window over all runs, and the median window.\n"
        );
        let _ = writeln!(
            out,
            "| client | streams | payload | worst window | median window |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for c in clients.iter().filter(|c| !c.starts_with("raw")) {
            for &streams in &multi {
                for &size in &sizes {
                    let all: Vec<f64> = idx
                        .runs(c, streams, size)
                        .iter()
                        .flat_map(|r| r.window_min_share.iter().copied())
                        .collect();
                    let (med, lo, _) = median_min_max(&all);
                    let _ = writeln!(
                        out,
                        "| {c} | {streams} | {} | {lo:.2} | {med:.2} |",
                        size_name(size)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\n### Opening a stream while the others saturate the link\n\n\
             From the `new_stream` call to the server's receipt of the new stream's first DATA \
             (and, in brackets, how long the `new_stream` call itself took).\n"
        );
        let _ = writeln!(
            out,
            "| client | busy streams | payload | probes | median ms | max ms | new_stream call median / max ms |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for c in clients.iter().filter(|c| !c.starts_with("raw")) {
            for &streams in &multi {
                for &size in &sizes {
                    let runs = idx.runs(c, streams, size);
                    let probes: Vec<Option<f64>> = runs
                        .iter()
                        .flat_map(|r| r.probe_ms.iter().copied())
                        .collect();
                    let ok: Vec<f64> = probes.iter().flatten().copied().collect();
                    let failed = probes.len() - ok.len();
                    let calls: Vec<f64> = runs
                        .iter()
                        .flat_map(|r| r.probe_open_call_ms.iter().copied())
                        .collect();
                    let (m, _, hi) = median_min_max(&ok);
                    let (cm, _, chi) = median_min_max(&calls);
                    let _ = writeln!(
                        out,
                        "| {c} | {streams} | {} | {}{} | {m:.2} | {} | {cm:.2} / {chi:.2} |",
                        size_name(size),
                        probes.len(),
                        if failed > 0 {
                            format!(
                                " ({failed} not delivered within the probe bound, 10 s in full mode)"
                            )
                        } else {
                            String::new()
                        },
                        if failed > 0 {
                            "> bound".to_owned()
                        } else {
                            format!("{hi:.2}")
                        },
                    );
                }
            }
        }
    }

    if !report.idle.is_empty() {
        let base = report.idle.iter().find(|r| r.client == "raw");
        let _ = writeln!(out, "\n### Idle streams: open rate and resident memory\n");
        let _ = writeln!(
            out,
            "`VmRSS` growth while N streams are open and idle, in a fresh child process per \
             client. The raw row opens the same streams with bare CONNECT packets and no client \
             state: it is the in-process server's share, subtracted in the last column.\n"
        );
        let _ = writeln!(
            out,
            "| client | streams | opened/s | RSS per stream (with server) | client only |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for r in &report.idle {
            let net = base
                .filter(|b| b.client != r.client)
                .map(|b| format!("{:.0} B", r.bytes_per_stream() - b.bytes_per_stream()))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} B | {net} |",
                r.client,
                r.streams,
                r.opens_per_sec(),
                r.bytes_per_stream()
            );
        }
    }

    let _ = writeln!(out, "\n### Integrity\n");
    let _ = writeln!(
        out,
        "| client | runs | payloads lost | integrity errors | failures | stalled runs |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for c in &clients {
        let runs: Vec<&RunResult> = report.runs.iter().filter(|r| &r.client == c).collect();
        let lost: u64 = runs.iter().map(|r| r.lost).sum();
        let errors: u64 = runs.iter().map(|r| r.errors).sum();
        let failures: usize = runs.iter().map(|r| r.failures.len()).sum();
        let stalled = runs.iter().filter(|r| r.stall_note.is_some()).count();
        let _ = writeln!(
            out,
            "| {c} | {} | {lost} | {errors} | {failures} | {stalled} |",
            runs.len()
        );
    }

    let _ = writeln!(out, "\n### Targets\n");
    let _ = writeln!(out, "| target | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    let mut target = |name: String, measured: String, met: bool| {
        let _ = writeln!(
            out,
            "| {name} | {measured} | {} |",
            if met { "yes" } else { "**no**" }
        );
    };
    for row in summary(report) {
        let vs_best = if row.size <= 1024 { 0.9 } else { 0.95 };
        let size = size_name(row.size);
        let streams = row.streams;
        for (other, bound) in [("wisp-mux", 1.2), ("raw-best", vs_best)] {
            let Some(r) = row.ratio("ours", other) else {
                continue;
            };
            target(
                format!("{streams} stream(s), {size}: ≥ {bound}x {other}"),
                ratio_measured(r, row.run_ratio_range("ours", other), bound),
                r >= bound,
            );
        }
    }
    for &streams in &multi {
        let shares: Vec<f64> = report
            .runs
            .iter()
            .filter(|r| r.client == "ours" && r.streams == streams)
            .flat_map(|r| r.window_min_share.iter().copied())
            .collect();
        let worst = shares.iter().copied().fold(f64::INFINITY, f64::min);
        target(
            format!("{streams} busy streams: every stream ≥ 0.6 of its fair share in every window"),
            format!("worst {worst:.2}"),
            worst >= 0.6,
        );
        let probes: Vec<Option<f64>> = report
            .runs
            .iter()
            .filter(|r| r.client == "ours" && r.streams == streams)
            .flat_map(|r| r.probe_ms.iter().copied())
            .collect();
        let worst = probes
            .iter()
            .map(|p| p.unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max);
        target(
            format!("{streams} busy streams: a new stream opens in < 10 ms"),
            format!("max {worst:.2} ms over {} probes", probes.len()),
            worst < 10.0 && !probes.is_empty(),
        );
    }
    let lost: u64 = report.runs.iter().map(|r| r.lost + r.errors).sum();
    target(
        "zero bytes lost (every client, every run)".into(),
        format!("{lost} payloads lost or damaged"),
        lost == 0,
    );
    if let Some(ours) = report.idle.iter().find(|r| r.client == "ours") {
        target(
            format!("< 1 KiB per idle stream at {} streams", ours.streams),
            format!("{:.0} B (with the server's share)", ours.bytes_per_stream()),
            ours.bytes_per_stream() < 1024.0,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(client: &str, streams: usize, size: usize, mib_s: f64) -> RunResult {
        RunResult {
            client: client.into(),
            streams,
            size,
            mib_s,
            ..RunResult::default()
        }
    }

    fn report(runs: Vec<RunResult>) -> Report {
        Report {
            runs,
            idle: Vec::new(),
            idle_failures: Vec::new(),
            buffer: 128,
            wall_secs: 1.0,
        }
    }

    #[test]
    fn ratios_run_by_run_pair_the_i_th_runs_and_mark_a_target_they_straddle() {
        // Runs in the order the bench makes them: the first series alternates ours and
        // raw-best; the 64-stream series has ours only and is compared with raw-best's
        // one-stream runs.
        let r = report(vec![
            run("ours", 1, 1024, 100.0),
            run("raw-best", 1, 1024, 100.0),
            run("ours", 1, 1024, 80.0),
            run("raw-best", 1, 1024, 100.0),
            run("ours", 64, 1024, 120.0),
            run("ours", 64, 1024, 110.0),
        ]);
        let rows = summary(&r);
        let one = rows
            .iter()
            .find(|row| row.streams == 1)
            .expect("one stream");
        assert_eq!(one.run_ratios["ours / raw-best"], vec![1.0, 0.8]);
        assert_eq!(one.run_ratio_range("ours", "raw-best"), Some((0.8, 1.0)));
        assert_eq!(one.ratio("ours", "raw-best"), Some(0.9));
        let many = rows
            .iter()
            .find(|row| row.streams == 64)
            .expect("64 streams");
        assert_eq!(many.run_ratios["ours / raw-best"], vec![1.2, 1.1]);

        let md = markdown(&r);
        assert!(md.contains("### Ratios run by run"), "{md}");
        assert!(md.contains("| 1 | 1 KiB | 0.90x (0.80–1.00) |"), "{md}");
        assert!(
            md.contains(
                "| 1 stream(s), 1 KiB: ≥ 0.9x raw-best | 0.90x (runs 0.80–1.00: on both sides of 0.9x) | yes |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 64 stream(s), 1 KiB: ≥ 0.9x raw-best | 1.15x (runs 1.10–1.20) | yes |"),
            "{md}"
        );
    }
}
