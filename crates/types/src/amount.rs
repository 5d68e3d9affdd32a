//! Money and compute: checked integer amounts in base units, never floats.

use crate::codec::{CodecError, Decode, Decoder, Encode, Encoder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Base units per whole AIC token.
pub const BASE_UNITS_PER_TOKEN: u128 = 1_000_000;

/// An amount of AIC in base units. Arithmetic is checked; overflow is a rejection, not a wrap.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Amount(pub u128);

/// Proven compute capacity: 1 unit = 1 GOPS of sustained INT8 matrix multiplication.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct ComputeUnits(pub u64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn tokens(tokens: u64) -> Amount {
        Amount(u128::from(tokens) * BASE_UNITS_PER_TOKEN)
    }
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }
    pub fn min(self, other: Amount) -> Amount {
        Amount(self.0.min(other.0))
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
    /// `self * numerator / denominator`, rounded down; `None` on overflow or a zero denominator.
    pub fn mul_div(self, numerator: u128, denominator: u128) -> Option<Amount> {
        if denominator == 0 {
            return None;
        }
        self.0.checked_mul(numerator).map(|v| Amount(v / denominator))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Amount {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse::<u128>().map(Amount)
    }
}

/// Amounts travel as decimal strings in JSON: u128 does not fit in a JSON number.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Raw::Number(n) => Ok(Amount(u128::from(n))),
        }
    }
}

impl Encode for Amount {
    fn encode(&self, e: &mut Encoder) {
        self.0.encode(e);
    }
}
impl Decode for Amount {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        Ok(Amount(u128::decode(d)?))
    }
}
impl Encode for ComputeUnits {
    fn encode(&self, e: &mut Encoder) {
        self.0.encode(e);
    }
}
impl Decode for ComputeUnits {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        Ok(ComputeUnits(u64::decode(d)?))
    }
}
