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

    /// Median MiB/s; raw is looked up in its one-stream runs for every series.
    fn median(&self, client: &str, streams: usize, size: usize, raw_streams: usize) -> f64 {
        let s = if client.starts_with("raw") {
            raw_streams
        } else {
            streams
        };
        let v: Vec<f64> = self.runs(client, s, size).iter().map(|r| r.mib_s).collect();
        median_min_max(&v).0
    }

    fn cell(&self, client: &str, streams: usize, size: usize, raw_streams: usize) -> String {
        let s = if client.starts_with("raw") {
            raw_streams
        } else {
            streams
        };
        let v: Vec<f64> = self.runs(client, s, size).iter().map(|r| r.mib_s).collect();
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
}

impl SummaryRow {
    /// Median of `a` over median of `b`, when both were measured.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        self.ratios.get(&format!("{a} / {b}")).copied()
    }
}

/// The throughput table's medians and ratios, by series and payload size (also written to
/// the JSON results).
pub fn summary(report: &Report) -> Vec<SummaryRow> {
    let idx = Index::new(report);
    let raw_streams = idx.raw_streams;
    let mut rows = Vec::new();
    for &streams in &idx.series {
        for &size in &idx.sizes {
            let median_mib_s: BTreeMap<String, f64> = idx
                .clients
                .iter()
                .map(|c| (c.clone(), idx.median(c, streams, size, raw_streams)))
                .filter(|(_, m)| !m.is_nan())
                .collect();
            let ratios = RATIOS
                .iter()
                .filter_map(|&(a, b)| {
                    let (x, y) = (median_mib_s.get(a)?, median_mib_s.get(b)?);
                    (*y > 0.0).then(|| (format!("{a} / {b}"), x / y))
                })
                .collect();
            rows.push(SummaryRow {
                streams,
                size,
                median_mib_s,
                ratios,
            });
        }
    }
    rows
}

/// Renders the report as Markdown.
pub fn markdown(report: &Report) -> String {
    let idx = Index::new(report);
    let (clients, series, sizes) = (idx.clients.clone(), idx.series.clone(), idx.sizes.clone());
    let raw_streams = idx.raw_streams;
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
            .map(|c| idx.cell(c, row.streams, row.size, raw_streams))
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
        if let Some(r) = row.ratio("ours", "wisp-mux") {
            target(
                format!("{streams} stream(s), {size}: ≥ 1.2x wisp-mux"),
                format!("{r:.2}x"),
                r >= 1.2,
            );
        }
        if let Some(r) = row.ratio("ours", "raw-best") {
            target(
                format!("{streams} stream(s), {size}: ≥ {vs_best}x raw-best"),
                format!("{r:.2}x"),
                r >= vs_best,
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
