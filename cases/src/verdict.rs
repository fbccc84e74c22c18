//! How strongly a case's requirement is stated ([`Level`]) and what a run concluded
//! ([`Verdict`]): Autobahn's verdict model, bound to the spec's MUST / SHOULD / MAY.

use std::fmt;

use serde::Deserialize;

/// How strongly the spec states the requirement a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A MUST: a failure is FAILED.
    #[serde(alias = "MUST")]
    Must,
    /// A SHOULD: a failure is NON-STRICT.
    #[serde(alias = "SHOULD")]
    Should,
    /// A MAY or undefined behaviour: a failure is INFORMATIONAL.
    #[serde(alias = "MAY")]
    May,
}

impl Level {
    /// The lowercase name case files use (`must`, `should`, `may`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Must => "must",
            Self::Should => "should",
            Self::May => "may",
        }
    }
}

/// The verdict of a case (Autobahn's model, bound to the case's level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Verdict {
    /// Every expectation held.
    #[serde(rename = "ok", alias = "OK")]
    Ok,
    /// A SHOULD-level expectation did not hold.
    #[serde(rename = "non-strict", alias = "NON-STRICT")]
    NonStrict,
    /// A MAY-level (or unspecified behaviour) expectation did not hold.
    #[serde(rename = "informational", alias = "INFORMATIONAL")]
    Informational,
    /// An optional feature the case needs is not offered by the subject (a server that
    /// does not advertise it): the case did not run.
    #[serde(rename = "unsupported", alias = "UNSUPPORTED")]
    Unsupported,
    /// A MUST-level expectation did not hold.
    #[serde(rename = "failed", alias = "FAILED")]
    Failed,
}

impl Verdict {
    /// Every verdict, from best to worst.
    pub const ALL: [Verdict; 5] = [
        Verdict::Ok,
        Verdict::NonStrict,
        Verdict::Informational,
        Verdict::Unsupported,
        Verdict::Failed,
    ];

    /// The verdict a failed expectation of this level gets.
    pub fn of_failure(level: Level) -> Self {
        match level {
            Level::Must => Self::Failed,
            Level::Should => Self::NonStrict,
            Level::May => Self::Informational,
        }
    }

    /// The verdict of a case of this level with these failed expectations: OK when there
    /// are none.
    pub fn judge(level: Level, failures: &[String]) -> Self {
        if failures.is_empty() {
            Self::Ok
        } else {
            Self::of_failure(level)
        }
    }

    /// How bad the verdict is for a gate: OK and UNSUPPORTED 0, INFORMATIONAL 1,
    /// NON-STRICT 2, FAILED 3.
    pub fn severity(self) -> u8 {
        match self {
            Self::Ok | Self::Unsupported => 0,
            Self::Informational => 1,
            Self::NonStrict => 2,
            Self::Failed => 3,
        }
    }

    /// Parses the display form (`OK`, `NON-STRICT`, `INFORMATIONAL`, `UNSUPPORTED`,
    /// `FAILED`), case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.to_string().eq_ignore_ascii_case(text.trim()))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "OK",
            Self::NonStrict => "NON-STRICT",
            Self::Informational => "INFORMATIONAL",
            Self::Unsupported => "UNSUPPORTED",
            Self::Failed => "FAILED",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_their_display_form() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(&v.to_string().to_lowercase()), Some(v));
        }
        assert_eq!(Verdict::parse("ERROR"), None);
    }

    #[test]
    fn failures_take_the_level_verdict() {
        assert_eq!(Verdict::judge(Level::Should, &[]), Verdict::Ok);
        let one = ["x".to_owned()];
        assert_eq!(Verdict::judge(Level::Must, &one), Verdict::Failed);
        assert_eq!(Verdict::judge(Level::Should, &one), Verdict::NonStrict);
        assert_eq!(Verdict::judge(Level::May, &one), Verdict::Informational);
    }
}
