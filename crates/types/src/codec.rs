//! The canonical binary codec: fixed-width little-endian integers, length-prefixed strings and
//! lists, one tag byte per enum. Every variable-length field has a limit checked before allocating,
//! and a value has exactly one encoding, so hashes and signatures over encodings are stable.

/// Longest string field, in bytes.
pub const STRING_BYTES_MAX: usize = 1024;
/// Longest list field, in items.
pub const LIST_ITEMS_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("input ended early")]
    UnexpectedEnd,
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    #[error("length {length} exceeds the limit {limit}")]
    TooLong { length: usize, limit: usize },
    #[error("unknown tag {tag} for {what}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("string is not UTF-8")]
    NotUtf8,
}

#[derive(Default)]
pub struct Encoder {
    pub bytes: Vec<u8>,
}

pub struct Decoder<'a> {
    input: &'a [u8],
}

pub trait Encode {
    fn encode(&self, e: &mut Encoder);
    fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        self.encode(&mut e);
        e.bytes
    }
}

pub trait Decode: Sized {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError>;
    /// Decodes a whole buffer: trailing bytes are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut d = Decoder { input: bytes };
        let value = Self::decode(&mut d)?;
        d.finish()?;
        Ok(value)
    }
}

impl Encoder {
    pub fn bytes_fixed(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }
    pub fn tag(&mut self, tag: u8) {
        self.bytes.push(tag);
    }
    fn length(&mut self, length: usize, limit: usize) {
        assert!(length <= limit, "encoding a field of {length} items over its limit {limit}");
        self.bytes.extend_from_slice(&(length as u32).to_le_bytes());
    }
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Decoder { input }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.input.len() < n {
            return Err(CodecError::UnexpectedEnd);
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn tag(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }
    fn length(&mut self, limit: usize) -> Result<usize, CodecError> {
        let length = u32::from_le_bytes(self.array()?) as usize;
        if length > limit {
            return Err(CodecError::TooLong { length, limit });
        }
        Ok(length)
    }
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.input.len() {
            0 => Ok(()),
            n => Err(CodecError::TrailingBytes(n)),
        }
    }
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, e: &mut Encoder) {
                e.bytes_fixed(&self.to_le_bytes());
            }
        }
        impl Decode for $t {
            fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
                Ok(<$t>::from_le_bytes(d.array()?))
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64, u128, i64);

impl Encode for bool {
    fn encode(&self, e: &mut Encoder) {
        e.tag(u8::from(*self));
    }
}
impl Decode for bool {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        match d.tag()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::UnknownTag { what: "bool", tag }),
        }
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode(&self, e: &mut Encoder) {
        e.bytes_fixed(self);
    }
}
impl<const N: usize> Decode for [u8; N] {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        d.array()
    }
}

impl Encode for String {
    fn encode(&self, e: &mut Encoder) {
        e.length(self.len(), STRING_BYTES_MAX);
        e.bytes_fixed(self.as_bytes());
    }
}
impl Decode for String {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        let length = d.length(STRING_BYTES_MAX)?;
        let bytes = d.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::NotUtf8)
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, e: &mut Encoder) {
        e.length(self.len(), LIST_ITEMS_MAX);
        for item in self {
            item.encode(e);
        }
    }
}
impl<T: Decode> Decode for Vec<T> {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        let length = d.length(LIST_ITEMS_MAX)?;
        (0..length).map(|_| T::decode(d)).collect()
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, e: &mut Encoder) {
        match self {
            None => e.tag(0),
            Some(value) => {
                e.tag(1);
                value.encode(e);
            }
        }
    }
}
impl<T: Decode> Decode for Option<T> {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        match d.tag()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(d)?)),
            tag => Err(CodecError::UnknownTag { what: "option", tag }),
        }
    }
}

/// Implements the codec for a struct as the concatenation of its fields in the given order.
#[macro_export]
macro_rules! codec_struct {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl $crate::codec::Encode for $name {
            fn encode(&self, e: &mut $crate::codec::Encoder) {
                $( $crate::codec::Encode::encode(&self.$field, e); )*
            }
        }
        impl $crate::codec::Decode for $name {
            fn decode(
                d: &mut $crate::codec::Decoder<'_>,
            ) -> Result<Self, $crate::codec::CodecError> {
                Ok($name { $( $field: $crate::codec::Decode::decode(d)?, )* })
            }
        }
    };
}

/// Implements the codec for a field-less enum as one tag byte (its discriminant).
#[macro_export]
macro_rules! codec_unit_enum {
    ($name:ident { $($variant:ident = $tag:literal),* $(,)? }) => {
        impl $crate::codec::Encode for $name {
            fn encode(&self, e: &mut $crate::codec::Encoder) {
                e.tag(match self { $( $name::$variant => $tag, )* });
            }
        }
        impl $crate::codec::Decode for $name {
            fn decode(
                d: &mut $crate::codec::Decoder<'_>,
            ) -> Result<Self, $crate::codec::CodecError> {
                match d.tag()? {
                    $( $tag => Ok($name::$variant), )*
                    tag => Err($crate::codec::CodecError::UnknownTag { what: stringify!($name), tag }),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_list_length_is_rejected_before_allocating() {
        let mut bytes = (u32::MAX).to_le_bytes().to_vec();
        bytes.push(0);
        assert_eq!(
            Vec::<u64>::from_bytes(&bytes),
            Err(CodecError::TooLong { length: u32::MAX as usize, limit: LIST_ITEMS_MAX })
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert_eq!(u16::from_bytes(&[1, 0, 9]), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn option_with_unknown_tag_is_rejected() {
        assert!(matches!(
            Option::<u8>::from_bytes(&[2, 0]),
            Err(CodecError::UnknownTag { what: "option", tag: 2 })
        ));
    }

    #[test]
    fn strings_round_trip_and_reject_invalid_utf8() {
        let text = String::from("héllo");
        assert_eq!(String::from_bytes(&text.to_bytes()), Ok(text));
        assert_eq!(String::from_bytes(&[1, 0, 0, 0, 0xff]), Err(CodecError::NotUtf8));
    }
}
