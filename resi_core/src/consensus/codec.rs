//! The binary form of aggregate states exchanged between parallel workers.
//!
//! Little-endian, length-prefixed, with a magic byte and a version so a state from another
//! build is rejected instead of misread. The reader never panics: every malformed input is an
//! [`ErrorKind::CorruptState`](crate::ErrorKind::CorruptState) error.

use crate::error::{Error, Result};

pub(crate) const VERSION: u8 = 2;

pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(magic: u8, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 2);
        buf.push(magic);
        buf.push(VERSION);
        Writer { buf }
    }
    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// The low `width` bytes (at most 8) of `v`, little-endian: the word written whole, then
    /// cut to them (the buffer's room is reserved up front, so nothing is allocated).
    #[inline(always)]
    pub fn uint(&mut self, v: u64, width: u8) {
        debug_assert!(width <= 8 && (width == 8 || v >> (8 * width) == 0));
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.buf.truncate(self.buf.len() - (8 - usize::from(width)));
    }
    /// `v` as it is, without its length.
    #[inline]
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Check the magic byte and version and position after them.
    pub fn new(bytes: &'a [u8], magic: u8, what: &'static str) -> Result<Self> {
        match bytes {
            [m, v, rest @ ..] if *m == magic && *v == VERSION => Ok(Reader { rest, what }),
            [m, v, ..] if *m == magic => Err(Error::corrupt_state(format!(
                "serialized {what} state has version {v}, this build reads version {VERSION}"
            ))),
            _ => Err(Error::corrupt_state(format!("bytes are not a serialized {what} state"))),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(Error::corrupt_state(format!("serialized {} state is truncated", self.what)));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    #[inline]
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    #[inline]
    pub fn u128(&mut self) -> Result<u128> {
        Ok(u128::from_le_bytes(self.take(16)?.try_into().expect("16 bytes")))
    }
    #[inline]
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u64()?;
        let len = usize::try_from(len).map_err(|_| self.corrupt("a length overflows"))?;
        self.take(len)
    }
    /// A count of items each at least `min_item_len` bytes long: a count the remaining bytes
    /// cannot hold is rejected before anything is allocated for it.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n.checked_mul(min_item_len).is_some_and(|need| need <= self.rest.len()) => Ok(n),
            _ => Err(self.corrupt("an item count exceeds the bytes present")),
        }
    }
    /// The remaining bytes, which must be exactly `n`: fewer are truncated, more trailing.
    /// Nothing remains after them.
    pub fn rest_exactly(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() > n {
            return Err(self.corrupt("trailing bytes"));
        }
        self.take(n)
    }
    pub fn corrupt(&self, why: &str) -> Error {
        Error::corrupt_state(format!("serialized {} state is corrupt: {why}", self.what))
    }
    pub fn finish(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
}
