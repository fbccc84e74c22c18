//! Target `info_records`: INFO extension records, both sides.
//!
//! The input is an INFO payload (the bytes after the 5-byte header). Every record, and the
//! whole input taken as one record's metadata, goes through each record decoder:
//!
//! - the server's records as the client decodes them (`PasswordServerRecord`,
//!   `CertAuthServerRecord`);
//! - the client's records as a server decodes them (`PasswordClientRecord` in both layouts,
//!   `CertAuthClientRecord`), then as the mock server and the server suite render and
//!   judge them (`RenderCtx::describe` with either layout, a known key and [`CHALLENGE`],
//!   `check_server_info_layout`).
//!
//! Whatever decodes re-encodes to the bytes it was decoded from (minus what the layout
//! leaves unread), and decodes again to the same record.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

// Import paths (the only lines to update when the crates move).
use wisp_cases::packet::SentChallenge;
use wisp_mock_server::pattern::check_server_info_layout;
use wisp_mock_server::trace::RenderCtx;
use wisp_proto::{
    CertAuthClientRecord, CertAuthServerRecord, InfoPacket, MotdServerRecord, PacketType,
    PasswordClientRecord, PasswordLayout, PasswordServerRecord,
};

/// The certificate challenge the mock server "sent" (a client record signing it with
/// [`crate::signing_key`] is valid).
pub const CHALLENGE: [u8; 64] = [0x11; 64];

/// Runs every decoder on `data`.
pub fn run(data: &[u8]) {
    let whole = Bytes::copy_from_slice(data);
    records(&whole);
    let Ok(info) = InfoPacket::decode(whole.clone()) else {
        return;
    };
    for record in &info.extensions {
        records(&record.data);
    }
    let mut why = Vec::new();
    check_server_info_layout(&info, &mut why);

    let mut msg = BytesMut::with_capacity(5 + data.len());
    msg.put_u8(PacketType::INFO.0);
    msg.put_u32_le(0);
    msg.put_slice(data);
    let msg = msg.freeze();
    let key = crate::signing_key();
    let challenge = Bytes::from_static(&CHALLENGE);
    for layout in [PasswordLayout::Draft6, PasswordLayout::Draft5] {
        let ctx = RenderCtx {
            aliases: HashMap::new(),
            challenge: Some(SentChallenge {
                bytes: challenge.clone(),
                random: layout == PasswordLayout::Draft5,
            }),
            // The key once: a signature check costs more than the rest of a run.
            keys: if layout == PasswordLayout::Draft6 {
                vec![("k".to_owned(), key.verifying_key())]
            } else {
                Vec::new()
            },
            password_layout: layout,
        };
        let _ = ctx.describe(&msg, true, false);
        let _ = ctx.describe(&msg, false, false);
    }
}

/// Decodes `data` as each kind of record metadata and checks the round trips.
fn records(data: &Bytes) {
    let server = PasswordServerRecord::decode(data);
    if data.len() == 1 && data[0] <= 1 {
        assert_eq!(server.encode(), *data, "password server record round trip");
    }
    let motd = MotdServerRecord::decode(data);
    if std::str::from_utf8(data).is_ok() {
        assert_eq!(motd.encode(), *data, "MOTD record round trip");
    }

    for layout in [PasswordLayout::Draft6, PasswordLayout::Draft5] {
        let Ok(record) = PasswordClientRecord::decode(data, layout) else {
            continue;
        };
        let encoded = record
            .encode(layout)
            .expect("a decoded password record encodes");
        assert!(
            data.starts_with(&encoded),
            "password record ({layout:?}) re-encodes to other bytes"
        );
        if layout == PasswordLayout::Draft6 {
            assert_eq!(encoded.len(), data.len(), "draft 6 reads to the end");
        }
        let again = PasswordClientRecord::decode(&encoded, layout).expect("decodes again");
        assert_eq!(again, record);
        assert_eq!(
            format!("{record:?}"),
            format!(
                "PasswordClientRecord {{ username: {:?}, password: \"<redacted>\" }}",
                record.username
            ),
            "Debug must not show the password"
        );
    }

    if let Ok(record) = CertAuthServerRecord::decode(data) {
        let encoded = record.encode();
        assert_eq!(encoded.len(), data.len());
        assert_eq!(encoded[1..], data[1..], "cert server record round trip");
        assert_eq!(CertAuthServerRecord::decode(&encoded).as_ref(), Ok(&record));
    }
    if let Ok(record) = CertAuthClientRecord::decode(data) {
        let encoded = record.encode();
        assert_eq!(encoded, *data, "cert client record round trip");
        assert_eq!(CertAuthClientRecord::decode(&encoded).as_ref(), Ok(&record));
    }
}
