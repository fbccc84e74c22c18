//! What the types cannot say: the rules checked after a case file parsed. Stream aliases
//! are defined before use, packets carry only their type's fields, patterns are
//! well-formed, key files load, and the expectations fit the case. Every error is located
//! in the file.

use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_saphyr::{Location, Spanned};
use wisp_proto::PacketType;

use crate::actions::{Action, Actions, StreamExpects};
use crate::client::{ClientExtension, FrameSpec, ServerStep, VersionSel};
use crate::load::LoadError;
use crate::packet::{PacketSpec, Pattern, ServerExtension, parse_version};
use crate::server::{ClientInfoRecord, ClientStep, KeyChoice, Secret};
use crate::values::{StreamRef, check_alias};
use crate::{ClientCase, Level, Role, ServerCase, Verdict};

/// Builds located errors for one file.
pub(crate) struct Checker<'a> {
    path: &'a Path,
    source: &'a str,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(path: &'a Path, source: &'a str) -> Self {
        Self { path, source }
    }

    /// An error at a parsed location.
    fn at(&self, loc: Location, message: impl Into<String>) -> LoadError {
        LoadError::at(self.path, loc, message, self.source)
    }

    /// An error at the top-level key `key` (`expect:`), or about the whole file when the
    /// key is absent.
    fn at_key(&self, key: &str, message: impl Into<String>) -> LoadError {
        let prefix = format!("{key}:");
        match self.source.lines().position(|l| l.starts_with(&prefix)) {
            Some(i) => LoadError::at_line(self.path, i as u64 + 1, 1, message, self.source),
            None => LoadError::whole_file(self.path, message),
        }
    }
}

type Checked = Result<(), LoadError>;

/// Checks a client-role case and loads the keys it names.
pub(crate) fn client_case(case: &mut ClientCase, root: &Path, check: &Checker<'_>) -> Checked {
    if case.server.is_empty() {
        return Err(check.at_key("server", "a client-role case needs a `server` script"));
    }
    client_spec(case, root, check)?;
    let aliases = actions(&case.client.actions, Role::Client, check)?;
    mock_script(case, root, check)?;
    if !case.server_options.answer_upgrade && case.server_options.upgrade.is_some() {
        return Err(check.at_key(
            "server_options",
            "`answer_upgrade: false` never answers, so `upgrade` (how to answer) cannot apply",
        ));
    }
    let e = &case.expect;
    if e.handshake.is_some() == e.error.is_some() {
        return Err(check.at_key(
            "expect",
            "`expect` needs exactly one of `handshake: ok` or `error: NAME`",
        ));
    }
    stream_expects(&e.streams, &aliases, check)?;
    if let Some(v) = &e.version {
        parse_version(v).map_err(|m| check.at_key("expect", m))?;
    }
    match (e.verdict, case.meta.level) {
        (None | Some(Verdict::Ok), _)
        | (Some(Verdict::NonStrict), Level::Should)
        | (Some(Verdict::Informational), Level::May) => Ok(()),
        (Some(v), level) => Err(check.at_key(
            "expect",
            format!(
                "`verdict: {v}` does not fit `level: {}` (non-strict needs should, informational needs may; a MUST failure is reported, or the case marked `ignore`)",
                level.name()
            ),
        )),
    }
}

fn client_spec(case: &mut ClientCase, root: &Path, check: &Checker<'_>) -> Checked {
    let client = &mut case.client;
    if client.version == VersionSel::V1
        && (!client.extensions.is_empty()
            || !client.required.is_empty()
            || !client.required_after.is_empty())
    {
        return Err(check.at_key(
            "client",
            "a v1 client offers no extensions: remove `extensions`/`required`/`required_after` or use `version: v2`",
        ));
    }
    for ext in &mut client.extensions {
        match ext {
            ClientExtension::Password(p) if p.username.is_some() != p.password.is_some() => {
                return Err(check.at_key(
                    "client",
                    "client password extension: give both `username` and `password`, or neither",
                ));
            }
            ClientExtension::CertAuth(c) => {
                if let Some(key) = &c.key {
                    c.signing_key = Some(signing_key(root, key, check)?);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The mock server's script: packets well-formed, keys loaded, `times` a number.
fn mock_script(case: &mut ClientCase, root: &Path, check: &Checker<'_>) -> Checked {
    let mut default_key: Option<(String, VerifyingKey)> = None;
    for step in &mut case.server {
        let loc = step.referenced;
        match &mut step.value {
            ServerStep::Send(p) => {
                packet(p).map_err(|m| check.at(loc, m))?;
                if p.times.is_some_and(|t| t.uses_credit()) {
                    return Err(check.at(
                        loc,
                        "`times` in terms of `credit` is for server-role scripts; give a number",
                    ));
                }
                for ext in &mut p.extensions {
                    if let ServerExtension::CertAuth(c) = ext
                        && let Some(k) = &c.verify_key
                    {
                        let key = public_key(root, k, check)?;
                        default_key = Some(key.clone());
                        c.verifying_key = Some(key);
                    }
                }
            }
            ServerStep::SendFrame(f) => frame(f).map_err(|m| check.at(loc, m))?,
            ServerStep::Expect(p) => {
                pattern(p, false).map_err(|m| check.at(loc, m))?;
                let all: Vec<&mut Pattern> = if p.one_of.is_some() {
                    p.one_of.iter_mut().flatten().collect()
                } else {
                    vec![p]
                };
                for pat in all {
                    if let Some(c) = &mut pat.cert_auth {
                        c.verifying_key = match &c.key {
                            Some(k) => Some(public_key(root, k, check)?),
                            None => default_key.clone(),
                        };
                        if c.verifying_key.is_none() {
                            return Err(check.at(
                                loc,
                                "`cert_auth` check needs `key:` (or `verify_key:` in the server's cert_auth INFO record)",
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A raw frame: one payload, close fields only on close frames, RSV within its 3 bits.
fn frame(f: &FrameSpec) -> Result<(), String> {
    let payloads = [f.text.is_some(), f.hex.is_some(), f.repeat.is_some()];
    if payloads.iter().filter(|p| **p).count() > 1 {
        return Err("`send_frame` takes one of `text`, `hex` and `repeat`".to_owned());
    }
    if (f.code.is_some() || f.reason.is_some()) && f.opcode.0 != 0x8 {
        return Err("`code` and `reason` are for close frames (`opcode: close`)".to_owned());
    }
    if f.reason.is_some() && f.code.is_none() {
        return Err("a close `reason` needs a `code` before it (RFC 6455 §5.5.1)".to_owned());
    }
    if f.rsv > 7 {
        return Err(format!("`rsv` is the three RSV bits, 0-7, not {}", f.rsv));
    }
    if f.times == Some(0) {
        return Err("`times` must be at least 1".to_owned());
    }
    Ok(())
}

/// Checks a server-role case.
pub(crate) fn server_case(case: &ServerCase, check: &Checker<'_>) -> Checked {
    if !case.actions.is_empty() && !case.script.is_empty() {
        return Err(check.at_key(
            "script",
            "a server-role case has `actions` (client library) or a `script` (raw packets), not both",
        ));
    }
    let e = &case.expect;
    if e.handshake.is_some() && e.error.is_some() {
        return Err(check.at_key(
            "expect",
            "`expect` takes at most one of `handshake: ok` and `error`",
        ));
    }
    if case.is_script() && (e.handshake.is_some() || e.error.is_some() || !e.streams.is_empty()) {
        return Err(check.at_key(
            "expect",
            "with a `script`, put expectations in the script (`expect` steps); `expect` takes only `subprotocol`",
        ));
    }
    let aliases = actions(&case.actions, Role::Server, check)?;
    stream_expects(&e.streams, &aliases, check)?;
    let bound = harness_script(&case.script, check)?;
    if let Some(close) = &case.close
        && let StreamRef::Alias(a) = &close.stream
        && !bound.contains(a)
        && !aliases.contains(a)
    {
        return Err(check.at_key(
            "close",
            format!(
                "`close.stream`: stream alias {a:?} is not defined by an `open` action or a sent CONNECT"
            ),
        ));
    }
    Ok(())
}

/// The actions of either role: aliases opened once and before use, payloads given once,
/// each action allowed in the role. Returns the aliases the actions open.
fn actions(actions: &Actions, role: Role, check: &Checker<'_>) -> Result<Vec<String>, LoadError> {
    let mut aliases: Vec<String> = Vec::new();
    for action in actions {
        let loc = action.referenced;
        match &action.value {
            Action::Open(open) => {
                check_alias(&open.stream).map_err(|m| check.at(loc, m))?;
                if aliases.contains(&open.stream) {
                    return Err(check.at(
                        loc,
                        format!("stream alias {:?} is opened twice", open.stream),
                    ));
                }
                if role == Role::Server && open.expect_error.is_some() {
                    return Err(check.at(
                        loc,
                        "`expect_error` on `open` is for client-role cases; judge the server with `expect.streams` or `close`",
                    ));
                }
                aliases.push(open.stream.clone());
            }
            Action::Echo(echo) => {
                if role == Role::Client {
                    return Err(check.at(loc, "the `echo` action is for server-role cases"));
                }
                if echo.streams == 0 || echo.streams > 1024 || echo.chunk == 0 {
                    return Err(check.at(
                        loc,
                        "`echo` needs 1 to 1024 `streams` and a non-zero `chunk`",
                    ));
                }
                if echo.window.is_some_and(|w| w < echo.chunk) {
                    return Err(check.at(loc, "`echo.window` must be at least `chunk`"));
                }
            }
            other => {
                if let Some(alias) = other.alias()
                    && !aliases.iter().any(|a| a == alias)
                {
                    return Err(check.at(
                        loc,
                        format!(
                            "stream alias {alias:?} is used before an `open` action defines it"
                        ),
                    ));
                }
                if let Action::Send(send) = other {
                    let given = usize::from(send.text.is_some())
                        + usize::from(send.hex.is_some())
                        + usize::from(send.repeat.is_some());
                    if given != 1 {
                        return Err(
                            check.at(loc, "`send` needs exactly one of `text`, `hex` or `repeat`")
                        );
                    }
                }
            }
        }
    }
    Ok(aliases)
}

fn stream_expects(streams: &StreamExpects, aliases: &[String], check: &Checker<'_>) -> Checked {
    for alias in streams.keys() {
        if !aliases.contains(alias) {
            return Err(check.at_key(
                "expect",
                format!("`expect.streams.{alias}`: no `open` action defines stream {alias:?}"),
            ));
        }
    }
    Ok(())
}

/// The harness's script (server role): packets well-formed, aliases bound by a sent
/// CONNECT before use. Returns the aliases bound.
fn harness_script(
    script: &[Spanned<ClientStep>],
    check: &Checker<'_>,
) -> Result<Vec<String>, LoadError> {
    let mut bound: Vec<String> = Vec::new();
    let check_ref = |stream: &StreamRef, bound: &[String], loc: Location| match stream {
        StreamRef::Alias(a) if !bound.contains(a) => Err(check.at(
            loc,
            format!("stream alias {a:?} is used before a sent CONNECT binds it"),
        )),
        _ => Ok(()),
    };
    for step in script {
        let loc = step.referenced;
        match &step.value {
            ClientStep::Send(p) => {
                packet(p).map_err(|m| check.at(loc, m))?;
                if !p.extensions.is_empty() {
                    return Err(check.at(
                        loc,
                        "a client INFO is sent with `send_info`, not `send: {type: INFO}`",
                    ));
                }
                match (&p.stream, p.packet_type.0) {
                    (StreamRef::Alias(a), PacketType::CONNECT) if !bound.contains(a) => {
                        check_alias(a).map_err(|m| check.at(loc, m))?;
                        bound.push(a.clone());
                    }
                    (s, _) => check_ref(s, &bound, loc)?,
                }
            }
            ClientStep::SendInfo(info) => {
                if !info.answer && !info.omit.is_empty() {
                    return Err(check.at(loc, "`omit` goes with `answer: true`"));
                }
                if info.answer && info.version.is_some() {
                    return Err(check.at(
                        loc,
                        "`answer: true` answers with the server's version: drop `version`",
                    ));
                }
                if let Some(v) = &info.version {
                    parse_version(v).map_err(|m| check.at(loc, m))?;
                }
                for r in &info.extensions {
                    let bad = match r {
                        ClientInfoRecord::Password(p) => p.credentials == Secret::None,
                        ClientInfoRecord::CertAuth(c) => c.key == KeyChoice::None,
                        _ => false,
                    };
                    if bad {
                        return Err(
                            check.at(loc, "`none` leaves a record out: drop the record instead")
                        );
                    }
                }
            }
            ClientStep::Expect(p) => {
                pattern(p, false).map_err(|m| check.at(loc, m))?;
                if p.password.is_some() || p.cert_auth.is_some() {
                    return Err(check.at(
                        loc,
                        "`password`/`cert_auth` checks read a client INFO; a server's INFO is checked with `extensions` and `well_formed`",
                    ));
                }
                pattern_refs(p, &mut |s| check_ref(s, &bound, loc))?;
            }
            ClientStep::ExpectNone(n) => {
                pattern(&n.pattern, false).map_err(|m| check.at(loc, m))?;
                pattern_refs(&n.pattern, &mut |s| check_ref(s, &bound, loc))?;
            }
            ClientStep::ExpectEcho(e) => check_ref(&e.stream, &bound, loc)?,
            ClientStep::ExpectTargetClosed(e) => check_ref(&e.stream, &bound, loc)?,
            _ => {}
        }
    }
    Ok(bound)
}

/// Calls `f` on every stream reference of a pattern (and its alternatives).
fn pattern_refs<E>(p: &Pattern, f: &mut dyn FnMut(&StreamRef) -> Result<(), E>) -> Result<(), E> {
    if let Some(s) = &p.stream {
        f(s)?;
    }
    for alt in p.one_of.iter().flatten() {
        pattern_refs(alt, f)?;
    }
    Ok(())
}

/// A packet to send carries only its type's fields (and what it must have).
fn packet(p: &PacketSpec) -> Result<(), String> {
    use PacketType as T;
    let t = p.packet_type.0;
    let mut allowed: Vec<&str> = vec!["type", "stream", "trailing_hex"];
    match t {
        T::CONNECT => allowed.extend(["stream_type", "host", "port"]),
        T::DATA => allowed.extend(["text", "hex", "repeat"]),
        T::CONTINUE => allowed.push("credit"),
        T::CLOSE => allowed.push("reason"),
        T::INFO => allowed.extend(["version", "extensions"]),
        _ => allowed.extend(["text", "hex", "repeat"]),
    }
    let present = [
        ("credit", p.credit.is_some()),
        ("reason", p.reason.is_some()),
        ("text", p.text.is_some()),
        ("hex", p.hex.is_some()),
        ("repeat", p.repeat.is_some()),
        ("stream_type", p.stream_type.is_some()),
        ("host", p.host.is_some()),
        ("port", p.port.is_some()),
        ("version", p.version.is_some()),
        ("extensions", !p.extensions.is_empty()),
    ];
    for (name, is) in present {
        if is && !allowed.contains(&name) {
            return Err(format!(
                "field `{name}` does not belong to a {} packet (allowed: {})",
                t,
                allowed.join(", ")
            ));
        }
    }
    if t == T::CONTINUE && p.credit.is_none() {
        return Err("a CONTINUE needs `credit` (use send_raw for a truncated one)".to_owned());
    }
    if t == T::CLOSE && p.reason.is_none() {
        return Err("a CLOSE needs `reason` (use send_raw for a truncated one)".to_owned());
    }
    if usize::from(p.text.is_some())
        + usize::from(p.hex.is_some())
        + usize::from(p.repeat.is_some())
        > 1
    {
        return Err("give one of `text`, `hex` and `repeat`".to_owned());
    }
    if let Some(v) = &p.version {
        parse_version(v)?;
    }
    Ok(())
}

/// A pattern names a type (or raw bytes, or alternatives); alternatives do not nest.
fn pattern(p: &Pattern, nested: bool) -> Result<(), String> {
    if let Some(alts) = &p.one_of {
        if nested {
            return Err("`one_of` cannot be nested".to_owned());
        }
        if p.packet_type.is_some()
            || p.stream.is_some()
            || p.raw_hex.is_some()
            || p.reason.is_some()
        {
            return Err("with `one_of`, put every field inside the alternatives".to_owned());
        }
        if alts.is_empty() {
            return Err("`one_of` needs at least one alternative".to_owned());
        }
        for a in alts {
            if a.timeout.is_some() || !a.skip.is_empty() {
                return Err(
                    "put `timeout` and `skip` next to `one_of`, not inside an alternative"
                        .to_owned(),
                );
            }
            pattern(a, true)?;
        }
        return Ok(());
    }
    if p.packet_type.is_none() && p.raw_hex.is_none() {
        return Err("an `expect` needs `type` (or `raw_hex`, or `one_of`)".to_owned());
    }
    if let Some(v) = &p.version {
        parse_version(v)?;
    }
    Ok(())
}

fn read_key_file(
    root: &Path,
    spanned: &Spanned<String>,
    check: &Checker<'_>,
) -> Result<String, LoadError> {
    let path = root.join(&spanned.value);
    std::fs::read_to_string(&path).map_err(|e| {
        check.at(
            spanned.referenced,
            format!("cannot read key file {} : {e}", path.display()),
        )
    })
}

/// Loads a public key (PEM SubjectPublicKeyInfo) relative to the cases directory.
fn public_key(
    root: &Path,
    spanned: &Spanned<String>,
    check: &Checker<'_>,
) -> Result<(String, VerifyingKey), LoadError> {
    let pem = read_key_file(root, spanned, check)?;
    let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        check.at(
            spanned.referenced,
            format!("{} is not an Ed25519 public key PEM: {e}", spanned.value),
        )
    })?;
    Ok((spanned.value.clone(), key))
}

/// Loads a private key (PKCS#8 PEM) relative to the cases directory.
fn signing_key(
    root: &Path,
    spanned: &Spanned<String>,
    check: &Checker<'_>,
) -> Result<SigningKey, LoadError> {
    let pem = read_key_file(root, spanned, check)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        check.at(
            spanned.referenced,
            format!(
                "{} is not an Ed25519 PKCS#8 private key PEM: {e}",
                spanned.value
            ),
        )
    })
}
