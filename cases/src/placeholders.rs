//! The `${name.host}` / `${name.port}` placeholders of server-role cases: the addresses of
//! the loopback targets the harness starts for the server under test to reach, filled in
//! before the YAML is parsed (so a case loads again with each run's real addresses).

use std::collections::BTreeMap;

/// Values for the `${name.field}` placeholders of server-role cases: the addresses of the
/// loopback targets the harness starts (`tcp_echo`, `udp_echo`, `refused`, `sink`,
/// `discard`, `banner`, `reset`, `watch`, `full_backlog`, `slow_echo`) and of the
/// configured `blocked` destination, each with `.host` and `.port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholders {
    values: BTreeMap<String, String>,
}

/// The target names a placeholder may use.
pub const TARGET_NAMES: &[&str] = &[
    "tcp_echo",
    "udp_echo",
    "refused",
    "sink",
    "discard",
    "banner",
    "reset",
    "watch",
    "full_backlog",
    "slow_echo",
    "blocked",
];

impl Default for Placeholders {
    /// Stand-in values (`127.0.0.1`, port 9) that let a case load for `list` and
    /// validation; a run fills in the real ones.
    fn default() -> Self {
        let mut p = Self {
            values: BTreeMap::new(),
        };
        for name in TARGET_NAMES {
            p.set(name, "127.0.0.1", 9);
        }
        p
    }
}

impl Placeholders {
    /// Sets `${name.host}` and `${name.port}`.
    pub fn set(&mut self, name: &str, host: &str, port: u16) {
        self.values.insert(format!("{name}.host"), host.to_owned());
        self.values.insert(format!("{name}.port"), port.to_string());
    }

    /// Removes `${name.host}` and `${name.port}`: a case that uses them no longer loads.
    pub fn remove(&mut self, name: &str) {
        self.values.remove(&format!("{name}.host"));
        self.values.remove(&format!("{name}.port"));
    }

    /// The value of one placeholder (`tcp_echo.port`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Replaces every `${name.field}` in `source`. An unknown or unterminated placeholder
    /// is an error with its 1-based line and column.
    pub fn substitute(&self, source: &str) -> Result<String, (u64, u64, String)> {
        let mut out = String::with_capacity(source.len());
        for (line_no, line) in source.split_inclusive('\n').enumerate() {
            let mut rest = line;
            let mut col = 0usize;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let at = (line_no as u64 + 1, (col + start) as u64 + 1);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    return Err((at.0, at.1, "unterminated `${` placeholder".to_owned()));
                };
                let key = &after[..end];
                match self.values.get(key) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err((
                            at.0,
                            at.1,
                            format!(
                                "unknown placeholder ${{{key}}}: use ${{NAME.host}} or ${{NAME.port}} with NAME one of {}",
                                TARGET_NAMES.join(", ")
                            ),
                        ));
                    }
                }
                let consumed = start + 2 + end + 1;
                col += consumed;
                rest = &rest[consumed..];
            }
            out.push_str(rest);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_substitute_and_locate_errors() {
        let mut p = Placeholders::default();
        p.set("tcp_echo", "127.0.0.1", 4242);
        let out = p
            .substitute("a: ${tcp_echo.host}:${tcp_echo.port}\nb: 1\n")
            .unwrap();
        assert_eq!(out, "a: 127.0.0.1:4242\nb: 1\n");
        let e = p.substitute("x: 1\ny: ${nope.port}\n").unwrap_err();
        assert_eq!((e.0, e.1), (2, 4));
        assert!(e.2.contains("unknown placeholder"), "{}", e.2);
        let e = p.substitute("y: ${tcp_echo.port\n").unwrap_err();
        assert!(e.2.contains("unterminated"), "{}", e.2);
    }
}
