//! The `did:trellis` system contract: DIDs created by an account, changed only by their
//! controller, every change kept as a version (docs/did-method.md).
//!
//! State under `did:` + address: controller, latest version, deactivated; each version under
//! `didv:` + address + version (postcard), so `?versionId=` and `?versionTime=` resolve history.

use alloy_primitives::{address, Address, Log};
use alloy_sol_types::{sol, SolEvent, SolInterface, SolValue};
use serde::{Deserialize, Serialize};

use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallContext, CallError, CallOutput, Result};

sol!(
    #[sol(all_derives)]
    "../../contracts/src/ITrellisDids.sol"
);

pub use ITrellisDids as abi;

/// Reserved address of the DID contract.
pub const DIDS_ADDRESS: Address = address!("0000000000000000000000000000000000001003");

pub const MAX_METHODS: usize = 16;
pub const MAX_SERVICES: usize = 16;
const MAX_FRAGMENT: usize = 64;
const MAX_TYPE: usize = 64;
const MAX_KEY: usize = 256;
const MAX_ENDPOINT: usize = 512;
/// The implicit verification method of the controlling account.
pub const CONTROLLER_FRAGMENT: &str = "controller";

/// A parsed `did:trellis:<chainId>:<address>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Did {
    pub chain_id: u64,
    pub address: Address,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    #[error("invalid DID {0:?}: expected did:trellis:<chain id>:<0x-prefixed 20-byte address>")]
    Invalid(String),
    #[error("DID method {0:?} is not supported here (only did:trellis)")]
    MethodNotSupported(String),
}

impl Did {
    pub fn parse(s: &str) -> Result<Did, DidError> {
        let invalid = || DidError::Invalid(s.to_owned());
        let rest = s.strip_prefix("did:").ok_or_else(invalid)?;
        let (method, rest) = rest.split_once(':').ok_or_else(invalid)?;
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(invalid());
        }
        if method != "trellis" {
            return Err(DidError::MethodNotSupported(method.to_owned()));
        }
        let (chain, id) = rest.split_once(':').ok_or_else(invalid)?;
        let chain_id: u64 = chain
            .parse()
            .ok()
            .filter(|_| !chain.starts_with('0') || chain == "0")
            .ok_or_else(invalid)?;
        if id.len() != 42 || !id.starts_with("0x") {
            return Err(invalid());
        }
        let address: Address = id.parse().map_err(|_| invalid())?;
        Ok(Did { chain_id, address })
    }

    /// The canonical form (lower-case hex).
    pub fn to_did_string(&self) -> String {
        format!("did:trellis:{}:{:#x}", self.chain_id, self.address)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Method {
    pub id: String,
    pub kind: String,
    pub public_key_multibase: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub kind: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub controller: Address,
    pub methods: Vec<Method>,
    pub authentication: Vec<String>,
    pub assertion: Vec<String>,
    pub services: Vec<Service>,
}

/// One version of a DID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub document: Document,
    pub version: u64,
    pub height: u64,
    pub timestamp_ms: u64,
    pub deactivated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    controller: Address,
    latest: u64,
    deactivated: bool,
}

fn state_key(id: &Address) -> Vec<u8> {
    [b"did:".as_slice(), id.as_slice()].concat()
}

fn version_key(id: &Address, version: u64) -> Vec<u8> {
    [b"didv:".as_slice(), id.as_slice(), &version.to_be_bytes()].concat()
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

fn fragment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FRAGMENT
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check(doc: &abi::Document) -> Result<Document> {
    if doc.controller == Address::ZERO {
        return revert("the controller cannot be the zero address");
    }
    if doc.verificationMethods.len() > MAX_METHODS || doc.services.len() > MAX_SERVICES {
        return revert(format!(
            "a document holds at most {MAX_METHODS} verification methods and {MAX_SERVICES} services"
        ));
    }
    let mut fragments: Vec<&str> = vec![CONTROLLER_FRAGMENT];
    let mut methods = Vec::new();
    for m in &doc.verificationMethods {
        if !fragment_ok(&m.id) || fragments.contains(&m.id.as_str()) {
            return revert(format!(
                "verification method id {:?} is invalid or taken",
                m.id
            ));
        }
        if !printable(&m.methodType, MAX_TYPE) || !printable(&m.publicKeyMultibase, MAX_KEY) {
            return revert(format!(
                "verification method {}: type (≤ {MAX_TYPE}) and publicKeyMultibase (≤ {MAX_KEY}) must be printable ASCII",
                m.id
            ));
        }
        fragments.push(&m.id);
        methods.push(Method {
            id: m.id.clone(),
            kind: m.methodType.clone(),
            public_key_multibase: m.publicKeyMultibase.clone(),
        });
    }
    for r in doc.authentication.iter().chain(&doc.assertionMethod) {
        if !fragments.contains(&r.as_str()) {
            return revert(format!(
                "relationship refers to unknown verification method {r:?}"
            ));
        }
    }
    let mut services = Vec::new();
    for s in &doc.services {
        if !fragment_ok(&s.id) || fragments.contains(&s.id.as_str()) {
            return revert(format!("service id {:?} is invalid or taken", s.id));
        }
        if !printable(&s.serviceType, MAX_TYPE) || !printable(&s.endpoint, MAX_ENDPOINT) {
            return revert(format!(
                "service {}: type (≤ {MAX_TYPE}) and endpoint (≤ {MAX_ENDPOINT}) must be printable ASCII",
                s.id
            ));
        }
        fragments.push(&s.id);
        services.push(Service {
            id: s.id.clone(),
            kind: s.serviceType.clone(),
            endpoint: s.endpoint.clone(),
        });
    }
    Ok(Document {
        controller: doc.controller,
        methods,
        authentication: doc.authentication.clone(),
        assertion: doc.assertionMethod.clone(),
        services,
    })
}

/// The DID contract over its storage.
pub struct Dids<'s, S: Slots> {
    slots: &'s mut S,
    logs: Vec<Log>,
}

impl<'s, S: Slots> Dids<'s, S> {
    pub fn new(slots: &'s mut S) -> Self {
        Dids {
            slots,
            logs: Vec::new(),
        }
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self, key: &[u8]) -> Result<Option<T>, SlotError> {
        kv::get_decoded(self.slots, key, "DID")
    }

    fn write<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), SlotError> {
        kv::put_encoded(self.slots, key, value, "DID")
    }

    fn emit<E: SolEvent>(&mut self, event: E) {
        self.logs.push(Log {
            address: DIDS_ADDRESS,
            data: event.encode_log_data(),
        });
    }

    /// The slots proving `id`'s state and its version `version` (or their absence).
    pub fn proof_slots(
        &mut self,
        id: &Address,
        version: u64,
    ) -> Result<Vec<alloy_primitives::U256>, SlotError> {
        let mut slots = kv::proof_slots(self.slots, &state_key(id))?;
        slots.extend(kv::proof_slots(self.slots, &version_key(id, version))?);
        Ok(slots)
    }

    /// The latest version of `id`, if created.
    pub fn latest(&mut self, id: &Address) -> Result<Option<Version>, SlotError> {
        match self.read::<State>(&state_key(id))? {
            Some(state) => self.version(id, state.latest),
            None => Ok(None),
        }
    }

    /// Version `version` of `id`.
    pub fn version(&mut self, id: &Address, version: u64) -> Result<Option<Version>, SlotError> {
        self.read(&version_key(id, version))
    }

    /// The first version (creation), for `created` metadata.
    pub fn first(&mut self, id: &Address) -> Result<Option<Version>, SlotError> {
        self.version(id, 1)
    }

    fn commit(&mut self, id: &Address, version: Version) -> Result<(), SlotError> {
        self.write(
            &state_key(id),
            &State {
                controller: version.document.controller,
                latest: version.version,
                deactivated: version.deactivated,
            },
        )?;
        self.write(&version_key(id, version.version), &version)
    }

    /// The current state of `id`, which `caller` must control and which must be active.
    fn controlled(&mut self, caller: &Address, id: &Address) -> Result<State> {
        let Some(state) = self.read::<State>(&state_key(id))? else {
            return revert(format!("did {id:#x} not found"));
        };
        if state.deactivated {
            return revert(format!("did {id:#x} is deactivated"));
        }
        if state.controller != *caller {
            return revert(format!(
                "{caller} is not the controller of did {id:#x} ({} is)",
                state.controller
            ));
        }
        Ok(state)
    }

    /// Runs one ABI-encoded call in a block with timestamp `timestamp_ms`.
    pub fn call(
        &mut self,
        ctx: &CallContext,
        timestamp_ms: u64,
        input: &[u8],
    ) -> Result<CallOutput> {
        use abi::ITrellisDidsCalls as C;
        let call = C::abi_decode(input).map_err(|e| {
            CallError::revert(format!(
                "dids: unknown function or malformed arguments ({e})"
            ))
        })?;
        let writes = matches!(call, C::create(_) | C::update(_) | C::deactivate(_));
        if writes && ctx.is_static {
            return revert("dids: state change in a static call");
        }
        let output: Vec<u8> = match call {
            C::create(c) => {
                let id = ctx.caller;
                let document = check(&c.document)?;
                if self.read::<State>(&state_key(&id))?.is_some() {
                    return revert(format!("did {id:#x} already exists"));
                }
                let controller = document.controller;
                let v = Version {
                    document,
                    version: 1,
                    height: ctx.height,
                    timestamp_ms,
                    deactivated: false,
                };
                self.commit(&id, v)?;
                self.emit(abi::DidCreated { id, controller });
                Vec::new()
            }
            C::update(c) => {
                let state = self.controlled(&ctx.caller, &c.id)?;
                let document = check(&c.document)?;
                let version = state.latest + 1;
                let v = Version {
                    document,
                    version,
                    height: ctx.height,
                    timestamp_ms,
                    deactivated: false,
                };
                self.commit(&c.id, v)?;
                self.emit(abi::DidUpdated { id: c.id, version });
                Vec::new()
            }
            C::deactivate(c) => {
                let state = self.controlled(&ctx.caller, &c.id)?;
                let Some(latest) = self.version(&c.id, state.latest)? else {
                    return Err(SlotError::invalid(format!(
                        "did {:#x} lost its latest version",
                        c.id
                    ))
                    .into());
                };
                let version = state.latest + 1;
                let v = Version {
                    document: latest.document,
                    version,
                    height: ctx.height,
                    timestamp_ms,
                    deactivated: true,
                };
                self.commit(&c.id, v)?;
                self.emit(abi::DidDeactivated { id: c.id, version });
                Vec::new()
            }
            C::resolve(c) => match self.latest(&c.id)? {
                Some(v) => to_abi(&v).abi_encode(),
                None => return revert(format!("did {:#x} not found", c.id)),
            },
            C::resolveVersion(c) => match self.version(&c.id, c.version)? {
                Some(v) => to_abi(&v).abi_encode(),
                None => return revert(format!("did {:#x} has no version {}", c.id, c.version)),
            },
        };
        Ok(CallOutput {
            output: output.into(),
            logs: std::mem::take(&mut self.logs),
            ..CallOutput::default()
        })
    }
}

fn to_abi(v: &Version) -> abi::Version {
    let d = &v.document;
    abi::Version {
        document: abi::Document {
            controller: d.controller,
            verificationMethods: d
                .methods
                .iter()
                .map(|m| abi::VerificationMethod {
                    id: m.id.clone(),
                    methodType: m.kind.clone(),
                    publicKeyMultibase: m.public_key_multibase.clone(),
                })
                .collect(),
            authentication: d.authentication.clone(),
            assertionMethod: d.assertion.clone(),
            services: d
                .services
                .iter()
                .map(|s| abi::Service {
                    id: s.id.clone(),
                    serviceType: s.kind.clone(),
                    endpoint: s.endpoint.clone(),
                })
                .collect(),
        },
        version: v.version,
        height: v.height,
        timestampMs: v.timestamp_ms,
        deactivated: v.deactivated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MapSlots;
    use alloy_sol_types::SolCall;

    fn ctx(caller: u8, height: u64) -> CallContext {
        CallContext {
            caller: Address::with_last_byte(caller),
            height,
            tx_hash: alloy_primitives::B256::ZERO,
            is_static: false,
        }
    }

    fn doc(controller: u8, key: &str) -> abi::Document {
        abi::Document {
            controller: Address::with_last_byte(controller),
            verificationMethods: vec![abi::VerificationMethod {
                id: "key-1".into(),
                methodType: "Ed25519VerificationKey2020".into(),
                publicKeyMultibase: key.into(),
            }],
            authentication: vec!["key-1".into()],
            assertionMethod: vec!["controller".into()],
            services: vec![abi::Service {
                id: "hub".into(),
                serviceType: "LinkedDomains".into(),
                endpoint: "https://acme.example".into(),
            }],
        }
    }

    fn reason(r: Result<CallOutput>) -> String {
        match r {
            Err(CallError::Revert(reason)) => reason,
            Err(other) => panic!("storage error {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn did_syntax() {
        let did = Did::parse("did:trellis:1337:0x2a37dc7d86e148b7c57f82bf799072c1e80debb7")
            .expect("valid");
        assert_eq!(did.chain_id, 1337);
        assert_eq!(
            did.to_did_string(),
            "did:trellis:1337:0x2a37dc7d86e148b7c57f82bf799072c1e80debb7"
        );
        assert!(matches!(
            Did::parse("did:web:example.com"),
            Err(DidError::MethodNotSupported(_))
        ));
        for bad in [
            "",
            "did:",
            "did:trellis",
            "did:trellis:1337",
            "did:trellis:x:0x00",
            "did:trellis:1337:0x12",
            "did:trellis:01:0x2a37dc7d86e148b7c57f82bf799072c1e80debb7",
            "did:Trellis:1:0x2a37dc7d86e148b7c57f82bf799072c1e80debb7",
            "did:trellis:1337:2a37dc7d86e148b7c57f82bf799072c1e80debb7aa",
        ] {
            assert!(
                matches!(Did::parse(bad), Err(DidError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lifecycle_by_the_controller_with_history() {
        let mut slots = MapSlots::empty();
        let id = Address::with_last_byte(1);
        let create = abi::createCall {
            document: doc(1, "z6MkOld"),
        }
        .abi_encode();
        Dids::new(&mut slots)
            .call(&ctx(1, 5), 1_000, &create)
            .expect("created");
        // Key rotation and a controller change, each by the current controller.
        let rotate = abi::updateCall {
            id,
            document: doc(1, "z6MkNew"),
        }
        .abi_encode();
        Dids::new(&mut slots)
            .call(&ctx(1, 6), 2_000, &rotate)
            .expect("rotated");
        let hand_over = abi::updateCall {
            id,
            document: doc(2, "z6MkNew"),
        }
        .abi_encode();
        Dids::new(&mut slots)
            .call(&ctx(1, 7), 3_000, &hand_over)
            .expect("handed over");
        let r = reason(Dids::new(&mut slots).call(&ctx(1, 8), 4_000, &rotate));
        assert!(r.contains("is not the controller"), "{r}");
        let deactivate = abi::deactivateCall { id }.abi_encode();
        Dids::new(&mut slots)
            .call(&ctx(2, 9), 5_000, &deactivate)
            .expect("deactivated");
        let r = reason(Dids::new(&mut slots).call(&ctx(2, 10), 6_000, &hand_over));
        assert!(r.contains("is deactivated"), "{r}");

        let mut dids = Dids::new(&mut slots);
        let latest = dids.latest(&id).expect("read").expect("exists");
        assert_eq!(
            (latest.version, latest.deactivated, latest.height),
            (4, true, 9)
        );
        assert_eq!(
            dids.version(&id, 1)
                .expect("read")
                .expect("v1")
                .document
                .methods[0]
                .public_key_multibase,
            "z6MkOld"
        );
        assert_eq!(
            dids.version(&id, 3)
                .expect("read")
                .expect("v3")
                .document
                .controller,
            Address::with_last_byte(2)
        );
        assert!(dids.version(&id, 5).expect("read").is_none());
    }

    #[test]
    fn malformed_documents_and_strangers_are_refused() {
        let mut slots = MapSlots::empty();
        let mut bad_ref = doc(1, "z");
        bad_ref.authentication = vec!["key-9".into()];
        let mut dup = doc(1, "z");
        dup.services[0].id = "key-1".into();
        let mut zero = doc(1, "z");
        zero.controller = Address::ZERO;
        let mut long = doc(1, "z");
        long.services[0].endpoint = "h".repeat(513);
        for (document, expected) in [
            (bad_ref, "unknown verification method"),
            (dup, "invalid or taken"),
            (zero, "zero address"),
            (long, "endpoint"),
        ] {
            let input = abi::createCall { document }.abi_encode();
            let r = reason(Dids::new(&mut slots).call(&ctx(1, 1), 0, &input));
            assert!(r.contains(expected), "{r:?} lacks {expected:?}");
        }
        assert!(slots.writes.is_empty());
        let create = abi::createCall {
            document: doc(1, "z"),
        }
        .abi_encode();
        Dids::new(&mut slots)
            .call(&ctx(1, 1), 0, &create)
            .expect("created");
        let r = reason(Dids::new(&mut slots).call(&ctx(1, 2), 0, &create));
        assert!(r.contains("already exists"), "{r}");
        let stranger = abi::deactivateCall {
            id: Address::with_last_byte(1),
        }
        .abi_encode();
        let r = reason(Dids::new(&mut slots).call(&ctx(9, 2), 0, &stranger));
        assert!(r.contains("is not the controller"), "{r}");
        let missing = abi::resolveCall {
            id: Address::with_last_byte(7),
        }
        .abi_encode();
        let r = reason(Dids::new(&mut slots).call(&ctx(9, 2), 0, &missing));
        assert!(r.contains("not found"), "{r}");
    }
}
