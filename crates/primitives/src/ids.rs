//! Newtypes for the numbers that must never be confused with each other.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An EIP-155 chain id. Every Trellis chain (main or sub-chain) has its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChainId(pub u64);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A block height. Genesis state sits at height 0; the first block is height 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Height(pub u64);

impl Height {
    pub const GENESIS: Height = Height(0);

    pub fn next(self) -> Height {
        Height(self.0 + 1)
    }

    pub fn prev(self) -> Option<Height> {
        self.0.checked_sub(1).map(Height)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An organisation's id: 1 to 32 characters of `a-z`, `0-9`, `-`, `_` and `.`, starting with
/// a letter or digit. Parsed once at the edge; the governance contract stores it as a string.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid organisation id {0:?}: use 1-32 characters of a-z, 0-9, '-', '_', '.', starting with a letter or digit")]
pub struct InvalidOrgId(pub String);

impl OrgId {
    pub fn parse(s: &str) -> Result<OrgId, InvalidOrgId> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || (i > 0 && matches!(b, b'-' | b'_' | b'.'))
            });
        if ok {
            Ok(OrgId(s.to_owned()))
        } else {
            Err(InvalidOrgId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgId {
    type Error = InvalidOrgId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        OrgId::parse(&s)
    }
}

impl From<OrgId> for String {
    fn from(id: OrgId) -> String {
        id.0
    }
}

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
