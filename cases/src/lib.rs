//! The Wisp conformance case language: one YAML file per case, split by role.
//!
//! - A **client-role** case ([`ClientCase`], `cases/<topic>/NAME.yaml`) puts a client
//!   under test: the mock server plays a script against it ([`client`]), the client runs
//!   actions ([`actions`]), and the case says what the spec requires of the outcome.
//! - A **server-role** case ([`ServerCase`], `cases/server/<family>/NAME.yaml`,
//!   `role: server`) puts a live server under test: the harness connects, sends traffic
//!   (the same [`actions`], or a raw script of packets) and judges what the server does
//!   ([`server`]).
//!
//! A case's ID is its path under `cases/` with `/` replaced by `.` and `.yaml` dropped
//! (`cases/auth/cert.valid-signature.yaml` is `auth.cert.valid-signature`), so an ID and
//! its file cannot disagree. The loader ([`load_dir`], [`load_case`]) is strict: every
//! struct denies unknown fields, every value has a typed parser ([`values`]), each role
//! parses only its own keys, and every error names the file, line and column
//! ([`LoadError`]). It never panics.
//!
//! The language is documented in `cases/README.md`.
//!
//! ```no_run
//! use std::path::Path;
//! use wisp_cases::{Case, load_dir};
//!
//! let (cases, errors) = load_dir(Path::new("cases"));
//! assert!(errors.is_empty());
//! for case in &cases {
//!     match case {
//!         Case::Client(c) => println!("{}: {} server steps", c.meta.id, c.server.len()),
//!         Case::Server(s) => println!("{}: family {}", s.meta.id, s.family()),
//!     }
//! }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Declares a role's case struct: its own keys, then the header keys every case file has
/// (`title`, `spec`, `level`, `description`, `role`, `timeout`, `covers`). The loader's first pass
/// reads the header into [`Meta`]; the role's struct only names the header keys, so that
/// `deny_unknown_fields` accepts them.
macro_rules! role_case {
    (
        $(#[$attr:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($fields)*
            #[serde(default, rename = "title")]
            _title: serde::de::IgnoredAny,
            #[serde(default, rename = "spec")]
            _spec: serde::de::IgnoredAny,
            #[serde(default, rename = "level")]
            _level: serde::de::IgnoredAny,
            #[serde(default, rename = "description")]
            _description: serde::de::IgnoredAny,
            #[serde(default, rename = "role")]
            _role: serde::de::IgnoredAny,
            #[serde(default, rename = "timeout")]
            _timeout: serde::de::IgnoredAny,
            #[serde(default, rename = "covers")]
            _covers: serde::de::IgnoredAny,
        }
    };
}

pub mod actions;
pub mod client;
pub mod embedded;
pub mod ext;
mod load;
pub mod packet;
mod placeholders;
pub mod requirements;
pub mod server;
mod validate;
pub mod values;
mod verdict;

pub use client::ClientCase;
pub use load::{
    LoadError, REQUIREMENTS_FILE, SERVER_TOPIC, case_id, load_case, load_case_str,
    load_case_str_with, load_case_with, load_dir, load_dir_with,
};
pub use placeholders::{Placeholders, TARGET_NAMES};
pub use server::ServerCase;
pub use verdict::{Level, Verdict};

/// Which side of the wire a case puts under test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A client is under test; the mock server plays the script.
    #[default]
    Client,
    /// A server is under test; the harness plays the client. Such cases live under
    /// `cases/server/`.
    Server,
}

impl Role {
    /// `client` or `server`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

/// What every case has, whatever its role: where it comes from and its header.
#[derive(Clone, Debug)]
pub struct Meta {
    /// The case ID: the path under `cases/`, dotted, without `.yaml`.
    pub id: String,
    /// The case file.
    pub path: PathBuf,
    /// The path relative to the cases directory (`auth/cert.valid-signature.yaml`).
    pub rel_path: String,
    /// The folder part of the ID (`auth`, `server.close`): the JUnit class name.
    pub group: String,
    /// The file's text as read (before placeholders were filled in), so a run can load
    /// it again with the addresses of its targets.
    pub source: String,
    /// One-line title.
    pub title: String,
    /// The spec section checked.
    pub spec: String,
    /// How strongly the spec states it.
    pub level: Level,
    /// Why the case exists, what a failure means.
    pub description: String,
    /// The case's own bound (`timeout:`), if it gives one.
    pub timeout: Option<values::Dur>,
    /// The IDs of the requirements the case checks (`covers:`), with their place in the
    /// file; see [`requirements`]. Empty when the file has no `covers:` (an error in a
    /// directory with a requirements file).
    pub covers: Vec<serde_saphyr::Spanned<String>>,
}

impl Meta {
    /// The value a case struct holds between parsing and the loader filling it in.
    fn unloaded() -> Self {
        Self::synthetic("", "", "", Level::Must)
    }

    /// The metadata of a report row that no case file backs (a run-level check, a test's
    /// stand-in case): no path, no source, no description, no `covers:`; the group is the
    /// ID up to its last dot.
    pub fn synthetic(id: &str, title: &str, spec: &str, level: Level) -> Self {
        Self {
            id: id.to_owned(),
            path: PathBuf::new(),
            rel_path: String::new(),
            group: id.rsplit_once('.').map_or("", |(g, _)| g).to_owned(),
            source: String::new(),
            title: title.to_owned(),
            spec: spec.to_owned(),
            level,
            description: String::new(),
            timeout: None,
            covers: Vec::new(),
        }
    }

    /// The requirement IDs of `covers:`, in file order.
    pub fn covered_ids(&self) -> impl Iterator<Item = &str> {
        self.covers.iter().map(|c| c.value.as_str())
    }

    /// The case's `timeout:`, or `default`.
    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.timeout.map_or(default, |d| d.0)
    }
}

/// One loaded, validated case of either role.
// A case is loaded once and read many times; boxing a variant would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Case {
    /// A client is under test.
    Client(ClientCase),
    /// A server is under test.
    Server(ServerCase),
}

impl Case {
    /// What every case has.
    pub fn meta(&self) -> &Meta {
        match self {
            Self::Client(c) => &c.meta,
            Self::Server(s) => &s.meta,
        }
    }

    /// The case ID.
    pub fn id(&self) -> &str {
        &self.meta().id
    }

    /// The side under test.
    pub fn role(&self) -> Role {
        match self {
            Self::Client(_) => Role::Client,
            Self::Server(_) => Role::Server,
        }
    }

    /// The client-role case, if it is one.
    pub fn as_client(&self) -> Option<&ClientCase> {
        match self {
            Self::Client(c) => Some(c),
            Self::Server(_) => None,
        }
    }

    /// The server-role case, if it is one.
    pub fn as_server(&self) -> Option<&ServerCase> {
        match self {
            Self::Server(s) => Some(s),
            Self::Client(_) => None,
        }
    }

    /// The overall bound on the case: client role, virtual time (default 30 s); server
    /// role, wall-clock time (default 15 s).
    pub fn timeout(&self) -> Duration {
        match self {
            Self::Client(c) => c.timeout(),
            Self::Server(s) => s.timeout(),
        }
    }
}
