//! Target `codec`: the packet codec.
//!
//! 1. Decoding: any bytes decode to a packet or a typed error (whose `Display` works). A
//!    decoded packet re-encodes to exactly the bytes it came from, minus the bytes the
//!    decoder documents as ignored (after a CONTINUE or CLOSE payload, and the 1–4 trailing
//!    bytes of an INFO), and decodes again to the same packet.
//! 2. Encoding: a packet built from the input (every body type, any field values) encodes
//!    to `encoded_len()` bytes and decodes back to itself; `encode_data` agrees with
//!    `Packet::data`.

use bytes::Bytes;

// Import paths (the only lines to update when the crates move).
use wisp_proto::{
    CloseReason, ExtensionId, ExtensionRecord, InfoPacket, Packet, PacketBody, PacketType,
    StreamType, WispVersion, encode_data,
};

use crate::input::Input;

/// Runs both properties on `data`.
pub fn run(data: &[u8]) {
    decode_reencode(data);
    encode_decode(data);
}

fn decode_reencode(data: &[u8]) {
    let packet = match Packet::decode(Bytes::copy_from_slice(data)) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = format!("{packet:?}");
    assert_eq!(packet.packet_type().0, data[0], "type byte");
    assert_eq!(
        packet.stream_id,
        u32::from_le_bytes([data[1], data[2], data[3], data[4]]),
        "stream id"
    );
    let encoded = packet.to_bytes();
    assert_eq!(encoded.len(), packet.encoded_len(), "encoded_len");
    let kept = match &packet.body {
        PacketBody::Continue { .. } | PacketBody::Close { .. } => encoded.len(),
        PacketBody::Info(info) => data.len() - info.trailing,
        _ => data.len(),
    };
    assert_eq!(
        &encoded[..],
        &data[..kept],
        "re-encoding differs from the input"
    );
    let mut again = Packet::decode(encoded).expect("a re-encoded packet decodes");
    if let (PacketBody::Info(a), PacketBody::Info(b)) = (&mut again.body, &packet.body) {
        assert_eq!(a.trailing, 0);
        a.trailing = b.trailing;
    }
    assert_eq!(again, packet, "decode(encode(p)) != p");
}

fn encode_decode(data: &[u8]) {
    let mut input = Input::new(data);
    let stream_id = input.u32();
    let packet = match input.u8() % 6 {
        0 => Packet::connect(
            stream_id,
            StreamType(input.u8()),
            String::from_utf8_lossy(input.chunk8()).into_owned(),
            input.u16(),
        ),
        1 => Packet::data(stream_id, Bytes::copy_from_slice(input.rest())),
        2 => Packet::continue_(stream_id, input.u32()),
        3 => Packet::close(stream_id, CloseReason(input.u8())),
        4 => {
            let version = WispVersion {
                major: input.u8(),
                minor: input.u8(),
            };
            let mut records = Vec::new();
            while !input.is_empty() {
                records.push(ExtensionRecord {
                    id: ExtensionId(input.u8()),
                    data: Bytes::copy_from_slice(input.chunk8()),
                });
            }
            Packet {
                stream_id,
                body: PacketBody::Info(InfoPacket::new(version, records)),
            }
        }
        _ => {
            // An unknown type only: a known type byte would decode as that type.
            let ty = PacketType(input.u8());
            if ty.is_known() {
                return;
            }
            Packet {
                stream_id,
                body: PacketBody::Unknown {
                    packet_type: ty,
                    payload: Bytes::copy_from_slice(input.rest()),
                },
            }
        }
    };
    let encoded = packet.to_bytes();
    assert_eq!(encoded.len(), packet.encoded_len(), "encoded_len");
    if let PacketBody::Data(payload) = &packet.body {
        assert_eq!(encode_data(stream_id, payload), encoded, "encode_data");
    }
    let decoded = Packet::decode(encoded).expect("an encoded packet decodes");
    assert_eq!(decoded, packet, "decode(encode(p)) != p");
}
