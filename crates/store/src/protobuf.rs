//! The small subset of the protobuf wire format that dag-pb and UnixFS use:
//! varint fields (wire type 0) and length-delimited fields (wire type 2).

use crate::varint::{self, PROTOBUF_LENGTH_MAX};

const WIRE_VARINT: u64 = 0;
const WIRE_LENGTH_DELIMITED: u64 = 2;

/// The value of one field as found on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    pub(crate) fn varint(self) -> Result<u64, &'static str> {
        match self {
            Value::Varint(value) => Ok(value),
            Value::Bytes(_) => Err("expected a varint field"),
        }
    }

    pub(crate) fn bytes(self) -> Result<&'a [u8], &'static str> {
        match self {
            Value::Bytes(bytes) => Ok(bytes),
            Value::Varint(_) => Err("expected a length-delimited field"),
        }
    }
}

/// Iterates over `(field number, value)` pairs; stops at the first malformed field.
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, failed: false }
    }

    fn read_varint(&mut self) -> Result<u64, &'static str> {
        let (value, used) =
            varint::decode(self.bytes, PROTOBUF_LENGTH_MAX).map_err(|_| "malformed varint")?;
        self.bytes = &self.bytes[used..];
        Ok(value)
    }

    fn read_field(&mut self) -> Result<(u64, Value<'a>), &'static str> {
        let key = self.read_varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err("field number 0");
        }
        match key & 7 {
            WIRE_VARINT => Ok((number, Value::Varint(self.read_varint()?))),
            WIRE_LENGTH_DELIMITED => {
                let length =
                    usize::try_from(self.read_varint()?).map_err(|_| "length overflows")?;
                if length > self.bytes.len() {
                    return Err("length-delimited field runs past the end");
                }
                let (value, rest) = self.bytes.split_at(length);
                self.bytes = rest;
                Ok((number, Value::Bytes(value)))
            }
            _ => Err("unsupported wire type"),
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.bytes.is_empty() {
            return None;
        }
        let field = self.read_field();
        self.failed = field.is_err();
        Some(field)
    }
}

pub(crate) fn put_varint_field(out: &mut Vec<u8>, number: u64, value: u64) {
    varint::encode(number << 3 | WIRE_VARINT, out);
    varint::encode(value, out);
}

pub(crate) fn put_bytes_field(out: &mut Vec<u8>, number: u64, value: &[u8]) {
    varint::encode(number << 3 | WIRE_LENGTH_DELIMITED, out);
    varint::encode(value.len() as u64, out);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut out = Vec::new();
        put_varint_field(&mut out, 1, 2);
        put_bytes_field(&mut out, 2, b"abc");
        put_varint_field(&mut out, 3, 300);
        assert_eq!(out, [0x08, 0x02, 0x12, 0x03, b'a', b'b', b'c', 0x18, 0xac, 0x02]);
        let fields: Result<Vec<_>, _> = Fields::new(&out).collect();
        assert_eq!(
            fields,
            Ok(vec![(1, Value::Varint(2)), (2, Value::Bytes(b"abc")), (3, Value::Varint(300))])
        );
    }

    #[test]
    fn malformed_fields_are_rejected() {
        for bad in [&[0x12, 0x05, b'a'][..], &[0x0d, 0, 0, 0, 0], &[0x00, 0x01], &[0x08]] {
            let fields: Result<Vec<_>, _> = Fields::new(bad).collect();
            assert!(fields.is_err(), "{bad:?}");
        }
    }
}
