//! The industrial identifier system contract: hierarchical prefixes held by organisations and
//! Handle-style identifiers `PREFIX/suffix` whose records are lists of typed values.
//!
//! Governance delegates prefixes ([`crate::Governance::prefixes`]); the holder's admins
//! delegate direct sub-prefixes here; the holder's accounts register identifiers. Records are
//! [`kv`] records (postcard) under `id:` + identifier; sub-prefixes under `pfx:` + prefix.

use alloy_primitives::{address, Address, Bytes, Log};
use alloy_sol_types::{sol, SolEvent, SolInterface, SolValue};
use serde::{Deserialize, Serialize};
use std::fmt;
use trellis_primitives::OrgId;

use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallContext, CallError, CallOutput, Governance, Result};

sol!(
    #[sol(all_derives)]
    "../../contracts/src/ITrellisIdentifiers.sol"
);

pub use ITrellisIdentifiers as abi;

/// Reserved address of the identifiers contract.
pub const IDENTIFIERS_ADDRESS: Address = address!("0000000000000000000000000000000000001002");

/// Most identifiers in one `registerBatch`.
pub const MAX_BATCH: usize = 1_000;
/// Most values in one record.
pub const MAX_VALUES: usize = 32;
/// Largest value data, in bytes.
pub const MAX_VALUE_BYTES: usize = 1_024;
/// Longest value type, in bytes.
pub const MAX_TYPE_BYTES: usize = 64;
/// Longest suffix, in bytes.
pub const MAX_SUFFIX_BYTES: usize = 128;
const MAX_SEGMENTS: usize = 8;
const MAX_SEGMENT_BYTES: usize = 32;

/// A dot-separated prefix such as `MA.156.1301`: 1 to 8 segments of 1 to 32 characters
/// `A-Z a-z 0-9 -`. Compared exactly (case-sensitive).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefix(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("invalid prefix {0:?}: use 1-8 dot-separated segments of 1-32 characters A-Z, a-z, 0-9, '-'")]
    Prefix(String),
    #[error("invalid identifier {0:?}: use PREFIX/suffix with a suffix of 1-128 printable ASCII characters (no spaces)")]
    Identifier(String),
}

impl Prefix {
    pub fn parse(s: &str) -> Result<Prefix, SyntaxError> {
        let segments: Vec<&str> = s.split('.').collect();
        let ok = segments.len() <= MAX_SEGMENTS
            && segments.iter().all(|seg| {
                !seg.is_empty()
                    && seg.len() <= MAX_SEGMENT_BYTES
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if ok {
            Ok(Prefix(s.to_owned()))
        } else {
            Err(SyntaxError::Prefix(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix one level up (`MA.156` for `MA.156.1301`), if any.
    pub fn parent(&self) -> Option<Prefix> {
        self.0.rsplit_once('.').map(|(p, _)| Prefix(p.to_owned()))
    }
}

impl TryFrom<String> for Prefix {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Prefix::parse(&s)
    }
}

impl From<Prefix> for String {
    fn from(p: Prefix) -> String {
        p.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `PREFIX/suffix`; the suffix may contain further `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identifier {
    prefix: Prefix,
    full: String,
}

impl Identifier {
    pub fn parse(s: &str) -> Result<Identifier, SyntaxError> {
        let bad = || SyntaxError::Identifier(s.to_owned());
        let (prefix, suffix) = s.split_once('/').ok_or_else(bad)?;
        let prefix = Prefix::parse(prefix).map_err(|_| bad())?;
        if suffix.is_empty()
            || suffix.len() > MAX_SUFFIX_BYTES
            || !suffix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(bad());
        }
        Ok(Identifier {
            prefix,
            full: s.to_owned(),
        })
    }

    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// One typed value of a record (Handle-style).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    pub index: u32,
    pub kind: String,
    pub data: Vec<u8>,
    pub ttl: u32,
}

/// A registered identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The organisation that registered it.
    pub org: OrgId,
    pub created: u64,
    pub updated: u64,
    pub values: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SubPrefix {
    org: OrgId,
    since: u64,
}

fn record_key(id: &Identifier) -> Vec<u8> {
    [b"id:".as_slice(), id.as_str().as_bytes()].concat()
}

fn prefix_key(p: &Prefix) -> Vec<u8> {
    [b"pfx:".as_slice(), p.as_str().as_bytes()].concat()
}

fn syntax(e: SyntaxError) -> CallError {
    CallError::revert(e.to_string())
}

fn check_values(values: &[abi::Value]) -> Result<Vec<Value>> {
    if values.len() > MAX_VALUES {
        return revert(format!(
            "a record holds at most {MAX_VALUES} values, got {}",
            values.len()
        ));
    }
    let mut out: Vec<Value> = Vec::with_capacity(values.len());
    for v in values {
        if v.index == 0 {
            return revert("value index 0 is reserved");
        }
        if out.iter().any(|o| o.index == v.index) {
            return revert(format!("value index {} appears twice", v.index));
        }
        if v.valueType.is_empty()
            || v.valueType.len() > MAX_TYPE_BYTES
            || !v.valueType.bytes().all(|b| b.is_ascii_graphic())
        {
            return revert(format!(
                "value type {:?} must be 1-{MAX_TYPE_BYTES} printable ASCII characters",
                v.valueType
            ));
        }
        if v.data.len() > MAX_VALUE_BYTES {
            return revert(format!(
                "value {} data of {} bytes exceeds {MAX_VALUE_BYTES}",
                v.index,
                v.data.len()
            ));
        }
        out.push(Value {
            index: v.index,
            kind: v.valueType.clone(),
            data: v.data.to_vec(),
            ttl: v.ttl,
        });
    }
    out.sort_by_key(|v| v.index);
    Ok(out)
}

/// The identifiers contract over its own storage, reading governance's.
pub struct Identifiers<'s, S: Slots, G: Slots> {
    slots: &'s mut S,
    governance: &'s mut G,
    logs: Vec<Log>,
}

impl<'s, S: Slots, G: Slots> Identifiers<'s, S, G> {
    pub fn new(slots: &'s mut S, governance: &'s mut G) -> Self {
        Identifiers {
            slots,
            governance,
            logs: Vec::new(),
        }
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self, key: &[u8]) -> Result<Option<T>, SlotError> {
        kv::get_decoded(self.slots, key, "identifier")
    }

    fn write<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), SlotError> {
        kv::put_encoded(self.slots, key, value, "identifier")
    }

    fn emit<E: SolEvent>(&mut self, event: E) {
        self.logs.push(Log {
            address: IDENTIFIERS_ADDRESS,
            data: event.encode_log_data(),
        });
    }

    /// The slots proving `id`'s record (or its absence), for storage proofs.
    pub fn proof_slots(
        &mut self,
        id: &Identifier,
    ) -> Result<Vec<alloy_primitives::U256>, SlotError> {
        kv::proof_slots(self.slots, &record_key(id))
    }

    /// The record of `id`, if registered.
    pub fn get(&mut self, id: &Identifier) -> Result<Option<Record>, SlotError> {
        self.read(&record_key(id))
    }

    /// The organisation holding `prefix`: delegated here, or by governance.
    pub fn holder(&mut self, prefix: &Prefix) -> Result<Option<OrgId>, SlotError> {
        if let Some(sub) = self.read::<SubPrefix>(&prefix_key(prefix))? {
            return Ok(Some(sub.org));
        }
        Governance::new(self.governance).prefix_holder(prefix)
    }

    /// The caller's organisation, which must hold `prefix`.
    fn authorise(&mut self, caller: &Address, prefix: &Prefix) -> Result<OrgId> {
        let Some(holder) = self.holder(prefix)? else {
            return revert(format!(
                "prefix {prefix} is not delegated to any organisation"
            ));
        };
        let caller_org = Governance::new(self.governance).account_org(caller)?;
        if caller_org.as_ref() != Some(&holder) {
            return revert(format!(
                "{caller} is not an account of {holder}, which holds prefix {prefix}"
            ));
        }
        Ok(holder)
    }

    fn register_one(
        &mut self,
        ctx: &CallContext,
        identifier: &str,
        values: &[abi::Value],
    ) -> Result<()> {
        let id = Identifier::parse(identifier).map_err(syntax)?;
        let values = check_values(values)?;
        let org = self.authorise(&ctx.caller, id.prefix())?;
        if self.get(&id)?.is_some() {
            return revert(format!("identifier {id} is already registered"));
        }
        self.write(
            &record_key(&id),
            &Record {
                org: org.clone(),
                created: ctx.height,
                updated: ctx.height,
                values,
            },
        )?;
        self.emit(abi::IdentifierRegistered {
            identifier: id.as_str().to_owned(),
            org: org.as_str().to_owned(),
        });
        Ok(())
    }

    /// Runs one ABI-encoded call.
    pub fn call(&mut self, ctx: &CallContext, input: &[u8]) -> Result<CallOutput> {
        use abi::ITrellisIdentifiersCalls as C;
        let call = C::abi_decode(input).map_err(|e| {
            CallError::revert(format!(
                "identifiers: unknown function or malformed arguments ({e})"
            ))
        })?;
        let writes = !matches!(call, C::prefixHolder(_) | C::resolve(_));
        if writes && ctx.is_static {
            return revert("identifiers: state change in a static call");
        }
        let output: Vec<u8> = match call {
            C::delegatePrefix(c) => {
                let child = Prefix::parse(&c.prefix).map_err(syntax)?;
                let Some(parent) = child.parent() else {
                    return revert(format!(
                        "{child} is a top-level prefix: governance delegates those"
                    ));
                };
                let holder = self.authorise(&ctx.caller, &parent)?;
                let admin = Governance::new(self.governance)
                    .organization(&holder)?
                    .is_some_and(|o| o.admins.contains(&ctx.caller));
                if !admin {
                    return revert(format!(
                        "{} is not an admin of {holder}, which holds prefix {parent}",
                        ctx.caller
                    ));
                }
                if self.holder(&child)?.is_some() {
                    return revert(format!("prefix {child} is already delegated"));
                }
                let org = OrgId::parse(&c.org).map_err(|e| CallError::revert(e.to_string()))?;
                if Governance::new(self.governance)
                    .organization(&org)?
                    .is_none()
                {
                    return revert(format!("no organisation {org}"));
                }
                self.write(
                    &prefix_key(&child),
                    &SubPrefix {
                        org: org.clone(),
                        since: ctx.height,
                    },
                )?;
                self.emit(abi::PrefixDelegated {
                    prefix: child.as_str().to_owned(),
                    org: org.as_str().to_owned(),
                });
                Vec::new()
            }
            C::prefixHolder(c) => {
                let prefix = Prefix::parse(&c.prefix).map_err(syntax)?;
                match self.holder(&prefix)? {
                    Some(org) => org.as_str().abi_encode(),
                    None => return revert(format!("prefix {prefix} is not delegated")),
                }
            }
            C::register(c) => {
                self.register_one(ctx, &c.identifier, &c.values)?;
                Vec::new()
            }
            C::registerBatch(c) => {
                if c.items.is_empty() || c.items.len() > MAX_BATCH {
                    return revert(format!(
                        "a batch holds 1 to {MAX_BATCH} identifiers, got {}",
                        c.items.len()
                    ));
                }
                for (i, item) in c.items.iter().enumerate() {
                    self.register_one(ctx, &item.identifier, &item.values)
                        .map_err(|e| match e {
                            CallError::Revert(r) => CallError::Revert(format!("item {i}: {r}")),
                            other => other,
                        })?;
                }
                Vec::new()
            }
            C::update(c) => {
                let id = Identifier::parse(&c.identifier).map_err(syntax)?;
                let values = check_values(&c.values)?;
                self.authorise(&ctx.caller, id.prefix())?;
                let Some(mut record) = self.get(&id)? else {
                    return revert(format!("identifier {id} not found"));
                };
                record.values = values;
                record.updated = ctx.height;
                self.write(&record_key(&id), &record)?;
                self.emit(abi::IdentifierUpdated {
                    identifier: id.as_str().to_owned(),
                });
                Vec::new()
            }
            C::remove(c) => {
                let id = Identifier::parse(&c.identifier).map_err(syntax)?;
                self.authorise(&ctx.caller, id.prefix())?;
                if self.get(&id)?.is_none() {
                    return revert(format!("identifier {id} not found"));
                }
                kv::delete(self.slots, &record_key(&id))?;
                self.emit(abi::IdentifierRemoved {
                    identifier: id.as_str().to_owned(),
                });
                Vec::new()
            }
            C::resolve(c) => {
                let id = Identifier::parse(&c.identifier).map_err(syntax)?;
                match self.get(&id)? {
                    Some(r) => to_abi(&id, &r).abi_encode(),
                    None => return revert(format!("identifier {id} not found")),
                }
            }
        };
        Ok(CallOutput {
            output: output.into(),
            logs: std::mem::take(&mut self.logs),
            ..CallOutput::default()
        })
    }
}

fn to_abi(id: &Identifier, r: &Record) -> abi::Record {
    abi::Record {
        identifier: id.as_str().to_owned(),
        org: r.org.as_str().to_owned(),
        created: r.created,
        updated: r.updated,
        values: r
            .values
            .iter()
            .map(|v| abi::Value {
                index: v.index,
                valueType: v.kind.clone(),
                data: Bytes::copy_from_slice(&v.data),
                ttl: v.ttl,
            })
            .collect(),
    }
}

/// The identifier an identifiers-contract log is about, for caches that follow the chain.
pub fn logged_identifier(log: &alloy_primitives::LogData) -> Option<String> {
    if let Ok(e) = abi::IdentifierRegistered::decode_log_data(log) {
        return Some(e.identifier);
    }
    if let Ok(e) = abi::IdentifierUpdated::decode_log_data(log) {
        return Some(e.identifier);
    }
    abi::IdentifierRemoved::decode_log_data(log)
        .ok()
        .map(|e| e.identifier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::Action;
    use crate::kv::MapSlots;
    use alloy_sol_types::SolCall;

    #[test]
    fn syntax_of_prefixes_and_identifiers() {
        for ok in ["MA", "MA.156", "MA.156.1301", "a-b.C9"] {
            assert!(Prefix::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "MA.",
            ".MA",
            "MA..1",
            "MA 1",
            "MA/1",
            &"x".repeat(33),
            "1.2.3.4.5.6.7.8.9",
        ] {
            assert!(Prefix::parse(bad).is_err(), "{bad:?}");
        }
        let id = Identifier::parse("MA.156.1301/lot-7/box:3").expect("valid");
        assert_eq!(id.prefix().as_str(), "MA.156.1301");
        assert_eq!(
            Prefix::parse("MA.156")
                .expect("p")
                .parent()
                .expect("parent")
                .as_str(),
            "MA"
        );
        for bad in [
            "MA.156",
            "MA.156/",
            "/x",
            "MA.156/a b",
            &format!("MA/{}", "x".repeat(129)),
        ] {
            assert!(Identifier::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Governance storage with organisations `acme` (admin 0xA1, account 0xA2) and `beta`
    /// (admin 0xB1), and prefix `MA.156` delegated to `acme`.
    fn governance() -> MapSlots<'static> {
        let genesis = trellis_primitives::Genesis::from_json(
            r#"{"chainId": 1, "validators": [{"publicKey": "0x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29", "power": 1, "org": "acme"}],
                "governance": {"organizations": [
                    {"id": "acme", "admins": ["0x00000000000000000000000000000000000000a1"], "accounts": ["0x00000000000000000000000000000000000000a2"]},
                    {"id": "beta", "admins": ["0x00000000000000000000000000000000000000b1"]}]}}"#,
        )
        .expect("genesis");
        let mut slots = MapSlots::empty();
        let mut gov = Governance::new(&mut slots);
        gov.init(&genesis).expect("init");
        gov.apply(
            &Action::DelegatePrefix {
                prefix: Prefix::parse("MA.156").expect("p"),
                org: OrgId::parse("acme").expect("org"),
            },
            1,
        )
        .expect("delegate");
        slots
    }

    fn ctx(caller: u8) -> CallContext {
        CallContext {
            caller: Address::with_last_byte(caller),
            height: 9,
            tx_hash: alloy_primitives::B256::ZERO,
            is_static: false,
        }
    }

    fn url(index: u32, data: &str) -> abi::Value {
        abi::Value {
            index,
            valueType: "URL".into(),
            data: Bytes::copy_from_slice(data.as_bytes()),
            ttl: 86_400,
        }
    }

    fn call(own: &mut MapSlots, gov: &mut MapSlots, who: u8, input: Vec<u8>) -> Result<CallOutput> {
        Identifiers::new(own, gov).call(&ctx(who), &input)
    }

    fn reason(r: Result<CallOutput>) -> String {
        match r {
            Err(CallError::Revert(reason)) => reason,
            Err(other) => panic!("storage error {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn holders_register_update_remove_and_delegate() {
        let mut gov = governance();
        let mut own = MapSlots::empty();
        let register = |id: &str, values: Vec<abi::Value>| {
            abi::registerCall {
                identifier: id.into(),
                values,
            }
            .abi_encode()
        };
        // An account of the holder registers; the record reads back.
        call(
            &mut own,
            &mut gov,
            0xa2,
            register("MA.156/lot-1", vec![url(1, "https://acme.example/lot-1")]),
        )
        .expect("registered");
        let id = Identifier::parse("MA.156/lot-1").expect("id");
        let record = Identifiers::new(&mut own, &mut gov)
            .get(&id)
            .expect("read")
            .expect("exists");
        assert_eq!(record.org.as_str(), "acme");
        assert_eq!(record.values[0].data, b"https://acme.example/lot-1");

        // Update and remove by the holder.
        let update = abi::updateCall {
            identifier: "MA.156/lot-1".into(),
            values: vec![url(2, "https://new"), url(1, "https://old")],
        };
        call(&mut own, &mut gov, 0xa1, update.abi_encode()).expect("updated");
        let record = Identifiers::new(&mut own, &mut gov)
            .get(&id)
            .expect("read")
            .expect("exists");
        assert_eq!(
            record.values.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![1, 2]
        );

        // The admin delegates a sub-prefix to beta, whose admin then registers under it.
        let delegate = abi::delegatePrefixCall {
            prefix: "MA.156.1301".into(),
            org: "beta".into(),
        };
        call(&mut own, &mut gov, 0xa1, delegate.abi_encode()).expect("delegated");
        call(&mut own, &mut gov, 0xb1, register("MA.156.1301/x", vec![])).expect("beta registers");

        let remove = abi::removeCall {
            identifier: "MA.156/lot-1".into(),
        };
        call(&mut own, &mut gov, 0xa2, remove.abi_encode()).expect("removed");
        assert!(Identifiers::new(&mut own, &mut gov)
            .get(&id)
            .expect("read")
            .is_none());
    }

    #[test]
    fn everyone_else_is_refused_with_a_reason_and_nothing_changes() {
        let mut gov = governance();
        let mut own = MapSlots::empty();
        let reg = |id: &str, values: Vec<abi::Value>| {
            abi::registerCall {
                identifier: id.into(),
                values,
            }
            .abi_encode()
        };
        call(&mut own, &mut gov, 0xa2, reg("MA.156/taken", vec![])).expect("first");
        let before = own.writes.clone();
        let cases: Vec<(u8, Vec<u8>, &str)> = vec![
            (0xb1, reg("MA.156/x", vec![]), "is not an account of acme"),
            (0x77, reg("MA.156/x", vec![]), "is not an account of acme"),
            (0xa2, reg("XX.1/x", vec![]), "prefix XX.1 is not delegated"),
            (0xa2, reg("MA.156/taken", vec![]), "already registered"),
            (0xa2, reg("MA.156", vec![]), "invalid identifier"),
            (0xa2, reg("MA.156/a b", vec![]), "invalid identifier"),
            (
                0xa2,
                reg("MA.156/y", vec![url(1, &"u".repeat(1025))]),
                "exceeds 1024",
            ),
            (
                0xa2,
                reg("MA.156/y", vec![url(1, "a"), url(1, "b")]),
                "appears twice",
            ),
            (
                0xa2,
                reg("MA.156/y", (1..=33).map(|i| url(i, "a")).collect()),
                "at most 32 values",
            ),
            (
                0xa2,
                reg("MA.156/y", vec![url(0, "a")]),
                "index 0 is reserved",
            ),
            (
                0xa2,
                abi::delegatePrefixCall {
                    prefix: "MA.156.9".into(),
                    org: "beta".into(),
                }
                .abi_encode(),
                "is not an admin of acme",
            ),
            (
                0xa1,
                abi::delegatePrefixCall {
                    prefix: "MA".into(),
                    org: "beta".into(),
                }
                .abi_encode(),
                "governance delegates those",
            ),
            (
                0xa1,
                abi::delegatePrefixCall {
                    prefix: "MA.156.9".into(),
                    org: "nobody".into(),
                }
                .abi_encode(),
                "no organisation nobody",
            ),
            (
                0xb1,
                abi::updateCall {
                    identifier: "MA.156/taken".into(),
                    values: vec![],
                }
                .abi_encode(),
                "is not an account of acme",
            ),
            (
                0xa2,
                abi::removeCall {
                    identifier: "MA.156/missing".into(),
                }
                .abi_encode(),
                "not found",
            ),
            (0xa2, vec![1, 2, 3], "unknown function"),
        ];
        for (who, input, expected) in cases {
            let r = reason(call(&mut own, &mut gov, who, input));
            assert!(r.contains(expected), "{r:?} lacks {expected:?}");
        }
        assert_eq!(own.writes, before);
        let batch = abi::registerBatchCall {
            items: vec![
                abi::Registration {
                    identifier: "MA.156/b1".into(),
                    values: vec![],
                },
                abi::Registration {
                    identifier: "MA.156/taken".into(),
                    values: vec![],
                },
            ],
        };
        // (The EVM journal drops the writes of a refused batch's earlier items.)
        let r = reason(call(&mut own, &mut gov, 0xa2, batch.abi_encode()));
        assert!(
            r.starts_with("item 1: identifier MA.156/taken is already registered"),
            "{r}"
        );
    }
}
