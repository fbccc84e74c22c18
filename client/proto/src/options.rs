//! [`MuxOptions`]: every tunable of a client connection, in one type.
//!
//! The core reads the protocol ones; the driver in `wisp-client` reads
//! [`MuxOptions::close_timeout`]. With the `serde` feature the type deserializes from the
//! YAML case language's `options:` map: the same field names, durations written with a unit
//! (`500ms`, `2s`, `1.5s`, `1m`, see [`parse_duration`]), unknown fields rejected, missing
//! ones defaulted, and `null` for "no bound" on the optional timeouts.

use std::time::Duration;

/// Tunables of a client connection ([`crate::ClientConnection`] and `wisp_client::ClientMux`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
#[non_exhaustive]
pub struct MuxOptions {
    /// Bound on the whole handshake (`None`: wait forever). Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration::optional"))]
    pub handshake_timeout: Option<Duration>,
    /// When a v2 handshake receives CONTINUE(0) first, how long to wait for the INFO that
    /// drafts 1–3 servers (wisp-mux 5.x) send next before settling on v1 (any other packet
    /// settles it at once). Also how long a v1 handshake that receives INFO first waits for
    /// the CONTINUE(0) drafts 4–5 send next before failing with "the server demands v2".
    /// Default 200 ms.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration::required"))]
    pub legacy_info_wait: Duration,
    /// Largest DATA payload sent; longer writes are split (each part takes one credit).
    /// Default 65531 bytes, so a packet fits a 64 KiB server message limit.
    pub max_payload_len: usize,
    /// The first stream id (ids increase by one and are never reused; 0 means 1). Default 1.
    pub first_stream_id: u32,
    /// Bound on waiting for a stream-open confirmation (`None`: wait forever). Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration::optional"))]
    pub stream_open_timeout: Option<Duration>,
    /// How many bytes of packets one transmit batch holds, shared fairly: the driver takes
    /// queued packets a batch at a time, and a busy stream may add to a batch while it is
    /// under its share (this limit divided by the streams writing), its first packet
    /// always, so every busy stream gets its turn in every batch. A batch exceeds the limit
    /// by at most one packet per stream. Writers refused for lack of room fill the next
    /// batch while the driver writes this one. Default 1 MiB: each of 64 streams writing
    /// 1 KiB payloads then adds 16 packets per turn, not 4, which quarters the task
    /// switches per packet; the payloads are masked as they are queued, so the batch's
    /// size costs no cache misses in a later masking pass.
    pub max_queued_bytes: usize,
    /// Bound on flushing and closing the WebSocket when the connection ends, and on reading
    /// for the server's CLOSE after a write failed. Default 5 s.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration::required"))]
    pub close_timeout: Duration,
    /// Bound on opening the WebSocket in `wisp_client::ClientMux::connect`: resolving and
    /// connecting TCP, the TLS handshake and the HTTP upgrade, before the Wisp handshake
    /// (which [`MuxOptions::handshake_timeout`] bounds) starts (`None`: wait forever).
    /// Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration::optional"))]
    pub connect_timeout: Option<Duration>,
}

impl Default for MuxOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Some(Duration::from_secs(10)),
            legacy_info_wait: Duration::from_millis(200),
            max_payload_len: 64 * 1024 - 5,
            first_stream_id: 1,
            stream_open_timeout: Some(Duration::from_secs(30)),
            max_queued_bytes: 1024 * 1024,
            close_timeout: Duration::from_secs(5),
            connect_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl MuxOptions {
    /// Sets [`MuxOptions::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`MuxOptions::legacy_info_wait`].
    pub fn legacy_info_wait(mut self, wait: Duration) -> Self {
        self.legacy_info_wait = wait;
        self
    }

    /// Sets [`MuxOptions::max_payload_len`] (at least 1).
    pub fn max_payload_len(mut self, len: usize) -> Self {
        self.max_payload_len = len.max(1);
        self
    }

    /// Sets [`MuxOptions::first_stream_id`] (0 means 1).
    pub fn first_stream_id(mut self, id: u32) -> Self {
        self.first_stream_id = id;
        self
    }

    /// Sets [`MuxOptions::stream_open_timeout`].
    pub fn stream_open_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream_open_timeout = timeout;
        self
    }

    /// Sets [`MuxOptions::max_queued_bytes`].
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// Sets [`MuxOptions::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`MuxOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest DATA payload actually sent (a configured 0 counts as 1).
    #[inline]
    pub fn payload_limit(&self) -> usize {
        self.max_payload_len.max(1)
    }
}

/// Parses a duration written with a unit, as the case language writes them: `150ms`, `2s`,
/// `1.5s`, `1m` (or `1min`), `0s`. A bare number is refused (its unit would be a guess), and
/// so is anything negative or over a day.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => {
            return Err(format!(
                "duration {text:?} needs a unit: write e.g. `500ms`, `2s` or `1m`"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("duration {text:?}: {number:?} is not a number"))?;
    let millis = match unit.trim() {
        "ms" => value,
        "s" => value * 1000.0,
        "m" | "min" => value * 60_000.0,
        other => {
            return Err(format!(
                "duration {text:?}: unknown unit {other:?} (use ms, s or m)"
            ));
        }
    };
    if !millis.is_finite() || !(0.0..=86_400_000.0).contains(&millis) {
        return Err(format!("duration {text:?} is out of range"));
    }
    // In range and non-negative (checked above), so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let micros = (millis * 1000.0).round() as u64;
    Ok(Duration::from_micros(micros))
}

/// Serde adapters for durations written with a unit ([`parse_duration`]).
#[cfg(feature = "serde")]
pub mod serde_duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};

    struct DurationVisitor;

    impl<'de> Visitor<'de> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration with a unit, e.g. `500ms` or `2s`")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse_duration(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "duration {v} needs a unit: write e.g. `{v}ms` or `{v}s`"
            )))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            self.visit_u64(v.unsigned_abs())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "duration {v} needs a unit: write e.g. `{v}s`"
            )))
        }
    }

    struct OptionalVisitor;

    impl<'de> Visitor<'de> for OptionalVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration with a unit, e.g. `500ms` or `2s`, or null for no bound")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(DurationVisitor).map(Some)
        }
    }

    /// A required duration (`2s`).
    pub mod required {
        use std::time::Duration;

        use serde::Deserializer;

        /// Deserializes a duration written with a unit.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            d.deserialize_any(super::DurationVisitor)
        }
    }

    /// An optional duration (`2s`, or `null` for no bound).
    pub mod optional {
        use std::time::Duration;

        use serde::Deserializer;

        /// Deserializes a duration written with a unit, or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            d.deserialize_option(super::OptionalVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("2").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("2h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("2d").is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn options_deserialize_from_the_case_language() {
        let o: MuxOptions =
            serde_saphyr::from_str("{handshake_timeout: 3s, max_payload_len: 4}").expect("parses");
        assert_eq!(o.handshake_timeout, Some(Duration::from_secs(3)));
        assert_eq!(o.max_payload_len, 4);
        assert_eq!(
            o.stream_open_timeout,
            MuxOptions::default().stream_open_timeout
        );
        let o: MuxOptions = serde_saphyr::from_str("{stream_open_timeout: null}").expect("parses");
        assert_eq!(o.stream_open_timeout, None);
        let unknown = serde_saphyr::from_str::<MuxOptions>("{handshake_timout: 3s}");
        assert!(unknown.is_err());
        let bare = serde_saphyr::from_str::<MuxOptions>("{legacy_info_wait: 200}");
        assert!(bare.unwrap_err().to_string().contains("needs a unit"));
    }
}
