//! Big-endian box writer: every box is written as a size placeholder, its body, then the size
//! patched in (ISO/IEC 14496-12 section 4.2), so no box needs its size computed twice.

/// An output buffer of boxes.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u24(&mut self, v: u32) {
        debug_assert!(v < 1 << 24);
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// A box (section 4.2 `Box`): 32-bit size, type, body.
    pub(crate) fn boxed(&mut self, fourcc: &[u8; 4], body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.u32(0);
        self.bytes(fourcc);
        body(self);
        let size = u32::try_from(self.buf.len() - start).expect("header boxes are below 4 GiB");
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    /// A full box (section 4.2 `FullBox`): box header, 8-bit version, 24-bit flags, body.
    pub(crate) fn full(
        &mut self,
        fourcc: &[u8; 4],
        version: u8,
        flags: u32,
        body: impl FnOnce(&mut Self),
    ) {
        self.boxed(fourcc, |w| {
            w.u8(version);
            w.u24(flags);
            body(w);
        });
    }

    /// The unity transformation matrix of mvhd/tkhd (section 8.2.2.3), 16.16 and 2.30 fixed.
    pub(crate) fn unity_matrix(&mut self) {
        for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
            self.u32(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sizes_are_patched() {
        let mut w = Writer::new();
        w.boxed(b"moov", |w| w.full(b"mvhd", 1, 0x000203, |w| w.u16(7)));
        assert_eq!(
            w.buf,
            [
                0, 0, 0, 22, b'm', b'o', b'o', b'v', // moov, 8 + 14
                0, 0, 0, 14, b'm', b'v', b'h', b'd', // mvhd, 8 + 4 + 2
                1, 0, 2, 3, // version 1, flags 0x000203
                0, 7,
            ]
        );
    }
}
