//! The v2 negotiation: from the server's INFO and the client's [`WispV2Handshake`] to the
//! client INFO and the agreed extensions. Pure: the state machine in `conn` decides when it
//! runs and what follows; each extension's own rule lives in its module ([`crate::ext`]).

use crate::error::{Error, PeerIncompatible};
use crate::ext::{self, ExtensionId, HandshakeOrder, NegotiatedExtension, WispV2Handshake};
use crate::info::{ExtensionRecord, InfoPacket, WispVersion};

/// What the client answers to the server's INFO.
#[derive(Debug)]
pub(crate) struct Agreement {
    /// The client INFO.
    pub(crate) info: InfoPacket,
    /// The agreed extensions, in the server's record order.
    pub(crate) agreed: Vec<NegotiatedExtension>,
    /// The server requires an authentication the client did not answer: a later
    /// CLOSE(0, 0x04) then means "authentication required" (servers that predate 0xC2).
    pub(crate) auth_unanswered: bool,
}

/// Checks the server's INFO (which came in `order`) and builds the client's answer. An `Err`
/// ends the handshake (and [`crate::close_reason_for`] says whether a CLOSE goes out).
pub(crate) fn answer(
    handshake: &WispV2Handshake,
    server: &InfoPacket,
    order: HandshakeOrder,
) -> Result<Agreement, Error> {
    if server.version.major != WispVersion::V2.major {
        return Err(PeerIncompatible::Version {
            found: server.version,
            speaks: WispVersion::V2,
        }
        .into());
    }
    let missing: Vec<ExtensionId> = handshake
        .required_extensions()
        .iter()
        .copied()
        .filter(|id| server.extension(*id).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(PeerIncompatible::MissingExtensions(missing).into());
    }

    let mut records = Vec::new();
    let mut agreed = Vec::new();
    let mut seen = Vec::new();
    let (mut auth_required, mut authenticated) = (false, false);
    let mut unusable = Vec::new();
    for record in &server.extensions {
        // Only the first record of an id counts.
        if seen.contains(&record.id) {
            continue;
        }
        seen.push(record.id);
        // Ids no module knows are skipped.
        let Some(reply) = ext::negotiate(record.id, handshake.extensions(), &record.data, order)
        else {
            continue;
        };
        let reply = reply?;
        if let Some(data) = reply.record {
            records.push(ExtensionRecord::new(record.id, data));
        }
        agreed.extend(reply.agreed);
        if let Some(auth) = reply.auth {
            auth_required |= auth.required;
            authenticated |= auth.answered;
        }
        if let Some(error) = reply.unusable {
            let auth_required_here = reply.auth.is_some_and(|a| a.required);
            unusable.push((record.id, auth_required_here, error));
        }
    }
    // An offered extension the client cannot use fails the handshake only when it is
    // needed: the client requires it, or it is an authentication the server requires and
    // no other extension answered.
    for (id, auth_required_here, error) in unusable {
        if handshake.required_extensions().contains(&id) || (auth_required_here && !authenticated) {
            return Err(error);
        }
    }
    Ok(Agreement {
        info: InfoPacket::new(WispVersion::V2, records),
        agreed,
        auth_unanswered: auth_required && !authenticated,
    })
}

/// The extensions the client requires that a Wisp v1 server cannot have (v1 has only what
/// [`crate::ext::Extension::implied_by_v1`] says: UDP). A server that answers a v2 handshake
/// as v1 must not get around required authentication that way.
pub(crate) fn missing_on_v1(handshake: &WispV2Handshake) -> Vec<ExtensionId> {
    let implied = ext::implied_by_v1();
    handshake
        .required_extensions()
        .iter()
        .copied()
        .filter(|id| !implied.iter().any(|e| e.id() == *id))
        .collect()
}
