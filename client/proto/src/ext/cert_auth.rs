//! Certificate authentication (0x03). The server's record carries whether a signature is
//! required, a mask of accepted algorithms and a random challenge; the client answers with
//! the algorithm it chose, the SHA-256 of its raw public key and its signature over the
//! challenge. The server answers a bad signature with CLOSE(0, 0xC1).
//!
//! Signing ([`CertAuthClientRecord::sign`]) and checking ([`CertAuthClientRecord::verify`])
//! live here and nowhere else.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{Extension, ExtensionId, HandshakeOrder, NegotiatedExtension, Reply};
use crate::error::{Error, Misuse, PeerIncompatible};
use crate::info::{ExtensionDecodeError, ExtensionRecord};

/// The certificate-authentication extension's offer: signs the server's challenge with an
/// Ed25519 key.
#[derive(Clone, Default)]
pub struct CertAuthExtensionBuilder {
    key: Option<SigningKey>,
}

impl fmt::Debug for CertAuthExtensionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuthExtensionBuilder")
            .field("has_key", &self.key.is_some())
            .finish()
    }
}

impl CertAuthExtensionBuilder {
    /// Offers certificate auth with this signing key.
    pub fn new(key: SigningKey) -> Self {
        Self { key: Some(key) }
    }

    /// Offers certificate auth with or without a key.
    pub fn new_client(key: Option<SigningKey>) -> Self {
        Self { key }
    }

    /// Loads the key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| Misuse::InvalidArgument(format!("Ed25519 PKCS#8 key: {e}")))?;
        Ok(Self::new(key))
    }
}

impl Extension for CertAuthExtensionBuilder {
    const ID: ExtensionId = ExtensionId::CERT_AUTH;

    /// Without a key only the server's `required` flag matters (read leniently from the
    /// first byte, to tell a later CLOSE 0x04 means "authentication required"). With a key,
    /// a malformed record ends the handshake; a record offering no algorithm this client
    /// has leaves the extension unusable; otherwise the client signs the challenge.
    fn negotiate(
        offer: Option<&Self>,
        server: &Bytes,
        _order: HandshakeOrder,
    ) -> Result<Reply, Error> {
        let Some(key) = offer.and_then(|o| o.key.as_ref()) else {
            let required = server.first().is_some_and(|b| *b != 0);
            return Ok(Reply::skip().with_auth(required, false));
        };
        let server = CertAuthServerRecord::decode(server)?;
        if server.algorithms & CERT_ALGORITHM_ED25519 == 0 {
            let mut reply = Reply::skip().with_auth(server.required, false);
            reply.unusable = Some(PeerIncompatible::NoCertAlgorithm(server.algorithms).into());
            return Ok(reply);
        }
        let record = CertAuthClientRecord::sign(key, &server.challenge).encode();
        let agreed = NegotiatedExtension::CertAuth {
            required: server.required,
            algorithms: server.algorithms,
        };
        Ok(Reply::agree(record, agreed).with_auth(server.required, true))
    }

    /// The server's record is `required | algorithms (non-zero) | challenge`, the challenge
    /// at least 32 bytes (draft 6 asks for 64 random bytes).
    fn check_server_record(server: &Bytes) -> Result<(), String> {
        match CertAuthServerRecord::decode(server) {
            Err(e) => Err(format!("malformed CERT_AUTH record: {}", e.reason)),
            Ok(rec) if rec.algorithms == 0 => {
                Err("the CERT_AUTH record offers no algorithm".to_owned())
            }
            Ok(rec) if rec.challenge.len() < 32 => Err(format!(
                "the CERT_AUTH challenge is {} bytes, expected about 64",
                rec.challenge.len()
            )),
            Ok(_) => Ok(()),
        }
    }
}

/// Bit 0 of the certificate-auth algorithm mask: Ed25519.
pub const CERT_ALGORITHM_ED25519: u8 = 0b0000_0001;

/// The certificate-auth extension's server metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertAuthServerRecord {
    /// Whether the server requires a signature.
    pub required: bool,
    /// The bitmask of accepted algorithms ([`CERT_ALGORITHM_ED25519`]).
    pub algorithms: u8,
    /// The random challenge to sign.
    pub challenge: Bytes,
}

impl CertAuthServerRecord {
    /// Decodes the server metadata (`required u8 | algorithms u8 | challenge…`).
    pub fn decode(data: &Bytes) -> Result<Self, ExtensionDecodeError> {
        if data.len() < 2 {
            return Err(ExtensionDecodeError {
                id: ExtensionId::CERT_AUTH,
                reason: "server record shorter than 2 bytes",
            });
        }
        Ok(Self {
            required: data[0] != 0,
            algorithms: data[1],
            challenge: data.slice(2..),
        })
    }

    /// Encodes the server metadata.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(2 + self.challenge.len());
        out.put_u8(u8::from(self.required));
        out.put_u8(self.algorithms);
        out.put_slice(&self.challenge);
        out.freeze()
    }

    /// The whole record.
    pub fn record(&self) -> ExtensionRecord {
        ExtensionRecord::new(ExtensionId::CERT_AUTH, self.encode())
    }
}

/// The certificate-auth extension's client metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertAuthClientRecord {
    /// The chosen algorithm (one bit of the server's mask).
    pub algorithm: u8,
    /// SHA-256 of the raw public key.
    pub key_hash: [u8; 32],
    /// The signature over the raw challenge bytes.
    pub signature: Bytes,
}

impl CertAuthClientRecord {
    /// The Ed25519 answer to `challenge`: the algorithm bit, the SHA-256 of `key`'s raw
    /// public key, and the signature over the raw challenge bytes.
    pub fn sign(key: &SigningKey, challenge: &[u8]) -> Self {
        Self {
            algorithm: CERT_ALGORITHM_ED25519,
            key_hash: key_hash(&key.verifying_key()),
            signature: Bytes::copy_from_slice(&key.sign(challenge).to_bytes()),
        }
    }

    /// Whether this record answers `challenge` with `key`: the key hash matches and the
    /// signature verifies (the algorithm byte is not checked).
    pub fn verify(&self, key: &VerifyingKey, challenge: &[u8]) -> bool {
        self.key_hash == key_hash(key)
            && Signature::from_slice(&self.signature)
                .is_ok_and(|s| key.verify(challenge, &s).is_ok())
    }

    /// Decodes the client metadata (`algorithm u8 | key_hash[32] | signature…`).
    pub fn decode(data: &Bytes) -> Result<Self, ExtensionDecodeError> {
        if data.len() < 33 {
            return Err(ExtensionDecodeError {
                id: ExtensionId::CERT_AUTH,
                reason: "client record shorter than 33 bytes",
            });
        }
        let mut key_hash = [0; 32];
        key_hash.copy_from_slice(&data[1..33]);
        Ok(Self {
            algorithm: data[0],
            key_hash,
            signature: data.slice(33..),
        })
    }

    /// Encodes the client metadata.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(33 + self.signature.len());
        out.put_u8(self.algorithm);
        out.put_slice(&self.key_hash);
        out.put_slice(&self.signature);
        out.freeze()
    }

    /// The whole record.
    pub fn record(&self) -> ExtensionRecord {
        ExtensionRecord::new(ExtensionId::CERT_AUTH, self.encode())
    }
}

/// SHA-256 of a raw Ed25519 public key, as the client record carries it.
pub fn key_hash(key: &VerifyingKey) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_record_verifies_only_for_its_key_and_challenge() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let record = CertAuthClientRecord::sign(&key, b"challenge");
        let decoded = CertAuthClientRecord::decode(&record.encode()).expect("decodes");
        assert_eq!(decoded, record);
        assert!(record.verify(&key.verifying_key(), b"challenge"));
        assert!(!record.verify(&key.verifying_key(), b"other challenge"));
        assert!(!record.verify(&other.verifying_key(), b"challenge"));
    }
}
