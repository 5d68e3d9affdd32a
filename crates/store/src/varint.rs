//! Unsigned LEB128 varints, shared by CIDs, multihashes, protobuf and CAR framing.

use std::io::{ErrorKind, Read};

/// Multiformats caps unsigned varints at 9 bytes (63 bits).
pub(crate) const MULTIFORMAT_LENGTH_MAX: usize = 9;

/// Protobuf varints carry a full u64 in at most 10 bytes.
pub(crate) const PROTOBUF_LENGTH_MAX: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended before the last byte (one without the continuation bit).
    Truncated,
    /// More bytes than allowed, or a value that does not fit.
    Overlong,
    /// A trailing zero byte: the same value has a shorter encoding.
    NotMinimal,
}

pub(crate) fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes one varint from the start of `bytes`; returns the value and the bytes used.
/// Only minimal encodings are accepted, so every value has exactly one encoding.
pub(crate) fn decode(bytes: &[u8], length_max: usize) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(length_max) {
        let payload = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        if shift == 63 && payload > 1 {
            return Err(VarintError::Overlong);
        }
        value |= payload << shift;
        if byte & 0x80 == 0 {
            if index > 0 && byte == 0 {
                return Err(VarintError::NotMinimal);
            }
            return Ok((value, index + 1));
        }
    }
    if bytes.len() >= length_max {
        Err(VarintError::Overlong)
    } else {
        Err(VarintError::Truncated)
    }
}

/// Reads one multiformats varint from a stream. `Ok(None)` means the stream ended cleanly
/// before the first byte; an end in the middle is `Truncated`.
pub(crate) fn read_multiformat<R: Read>(
    reader: &mut R,
) -> std::io::Result<Result<Option<u64>, VarintError>> {
    let mut buffer = [0u8; MULTIFORMAT_LENGTH_MAX];
    for index in 0..MULTIFORMAT_LENGTH_MAX {
        let mut byte = [0u8; 1];
        loop {
            match reader.read(&mut byte) {
                Ok(0) if index == 0 => return Ok(Ok(None)),
                Ok(0) => return Ok(Err(VarintError::Truncated)),
                Ok(_) => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        buffer[index] = byte[0];
        if byte[0] & 0x80 == 0 {
            return Ok(
                decode(&buffer[..=index], MULTIFORMAT_LENGTH_MAX).map(|(value, _)| Some(value))
            );
        }
    }
    Ok(Err(VarintError::Overlong))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_lengths_match() {
        for value in [0u64, 1, 127, 128, 255, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            encode(value, &mut out);
            let bits = 64 - value.leading_zeros() as usize;
            assert_eq!(out.len(), bits.div_ceil(7).max(1), "{value}");
            assert_eq!(decode(&out, PROTOBUF_LENGTH_MAX), Ok((value, out.len())));
        }
    }

    #[test]
    fn known_encodings_from_the_multiformats_spec() {
        let mut out = Vec::new();
        encode(300, &mut out);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        encode(16_384, &mut out);
        assert_eq!(out, [0x80, 0x80, 0x01]);
    }

    #[test]
    fn malformed_varints_are_rejected() {
        assert_eq!(decode(&[], 9), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80], 9), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x81, 0x00], 9), Err(VarintError::NotMinimal));
        assert_eq!(decode(&[0xff; 9], 9), Err(VarintError::Overlong));
        let mut eleven = vec![0xff; 9];
        eleven.push(0x02);
        assert_eq!(decode(&eleven, PROTOBUF_LENGTH_MAX), Err(VarintError::Overlong));
    }

    #[test]
    fn stream_reader_distinguishes_clean_end_from_truncation() {
        assert!(matches!(read_multiformat(&mut &[][..]), Ok(Ok(None))));
        assert!(matches!(read_multiformat(&mut &[0x80][..]), Ok(Err(VarintError::Truncated))));
        assert!(matches!(read_multiformat(&mut &[0xac, 0x02, 0x07][..]), Ok(Ok(Some(300)))));
    }
}
