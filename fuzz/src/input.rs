//! A cursor over the fuzzer's bytes: fixed-width reads that never fail (missing bytes read
//! as zero), so every input, however short, is a valid program for a target.

/// The unread part of a fuzz input.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 once the input is used up).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `len` bytes (fewer when the input ends first).
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A chunk prefixed by its `u16` length.
    pub fn chunk16(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16());
        self.bytes(len)
    }

    /// A chunk prefixed by its `u8` length.
    pub fn chunk8(&mut self) -> &'a [u8] {
        let len = usize::from(self.u8());
        self.bytes(len)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Appends `chunk` with its `u16` length prefix (the inverse of [`Input::chunk16`]; for
/// corpus generators). Longer chunks are cut at 65535 bytes.
pub fn put_chunk16(out: &mut Vec<u8>, chunk: &[u8]) {
    let chunk = &chunk[..chunk.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(chunk);
}

/// Appends `chunk` with its `u8` length prefix (the inverse of [`Input::chunk8`]).
pub fn put_chunk8(out: &mut Vec<u8>, chunk: &[u8]) {
    let chunk = &chunk[..chunk.len().min(usize::from(u8::MAX))];
    out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(chunk);
}
