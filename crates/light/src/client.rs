//! A light client of another chain: the state a chain (or an off-chain follower) keeps to
//! accept that chain's finalized headers without running its consensus, and the one rule
//! that moves it.
//!
//! The client trusts one validator set at a time. A header is accepted when
//!
//! 1. it is the followed chain's (its chain id),
//! 2. the set that decided it is the trusted set (`validatorsHash` equals the trusted set's
//!    hash), and
//! 3. its commit certificate carries valid precommits of more than two thirds of that set's
//!    power for exactly this header.
//!
//! Heights may be skipped while the set stays the same: a header decided by the trusted set
//! is as final as its predecessors. The set changes only through a header: when an accepted
//! header newer than the latest names a different `nextValidatorsHash`, the update must
//! carry that set (checked against the hash) and the client trusts it from then on. A header
//! decided by any other set is refused: the header that changed the set must come first, so
//! set changes are followed in order.
//!
//! A skipped height may be anchored later (backfilled) only above the header that handed over
//! to the trusted set (`trusted_since`): below it, the set that decided the header is one the
//! client no longer holds, and a header signed by the trusted set there proves nothing.
//!
//! Two different certified headers at one height (above `trusted_since`) mean the followed
//! chain's validators signed a fork. The client then **freezes**: it keeps the conflicting
//! header with its certificate and the hash it had anchored (whose header and certificate
//! are in the update that anchored it), and accepts nothing more until its owner (the main
//! chain's governance) replaces its state.
//!
//! Known limit: there is no trusting period. A client that was not told of a set change for
//! a long time still trusts the replaced set, whose members may no longer be accountable;
//! anchoring every set change promptly (backbone nodes do, on every change and on a
//! heartbeat) keeps that window short.
//!
//! The state is plain data: the on-chain client stores it per followed chain, and the heights
//! it anchored (with their header hashes) are the caller's to keep; [`ClientState::update`]
//! asks for the one it needs through a closure.

use alloy_primitives::B256;
use alloy_rlp::Decodable;
use trellis_primitives::Header;

use crate::certificate::{verify_certificate, CertificateError};
use crate::validators::ValidatorSet;

/// A header the client accepted: what proofs against that height need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub height: u64,
    pub hash: B256,
    pub state_root: B256,
    pub timestamp_ms: u64,
}

impl Anchor {
    fn of(header: &Header) -> Anchor {
        Anchor {
            height: header.height,
            hash: header.hash(),
            state_root: header.state_root,
            timestamp_ms: header.timestamp_ms,
        }
    }
}

/// Two certified headers at one height: the proof that the followed chain's validators
/// signed a fork.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misbehaviour {
    pub height: u64,
    /// The hash the client had anchored at that height.
    pub anchored: B256,
    /// The conflicting header (RLP) and its certificate, as submitted.
    pub header: Vec<u8>,
    pub certificate: Vec<u8>,
}

/// What a client keeps of the chain it follows.
#[derive(Clone, Debug)]
pub struct ClientState {
    pub chain_id: u64,
    /// The newest accepted header (the trust root's height and hash before any: height 0
    /// is the followed chain's genesis).
    pub latest: Anchor,
    /// The set that decides the headers after `latest`.
    pub validators: ValidatorSet,
    /// The height from which on `validators` is trusted: the root's, or the header that
    /// handed over to it. Nothing at or below it is backfilled or judged a fork.
    pub trusted_since: u64,
    /// Set once the chain was caught signing two headers at one height.
    pub frozen: Option<Box<Misbehaviour>>,
}

/// What an accepted update did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A header newer than the latest: the client moved to it (`set_changed`: and now trusts
    /// the set it named for the next height).
    Advanced { anchor: Anchor, set_changed: bool },
    /// A certified header at an older height the client had skipped: anchored there, the
    /// latest unchanged.
    Backfilled(Anchor),
    /// The header the client already has at that height: nothing changes.
    Known,
    /// A certified header that conflicts with the one anchored at its height: the client is
    /// frozen now, with this evidence.
    Froze(Box<Misbehaviour>),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the client is frozen: the chain signed two headers at height {0}")]
    Frozen(u64),
    #[error("undecodable header: {0}")]
    Header(String),
    #[error("header is of chain {got}, the client follows chain {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("genesis headers carry no certificate: the client starts from its trust root")]
    Genesis,
    #[error(
        "header {height} was decided by set {got}, the client trusts set {trusted}: \
         submit the header that changed the set first"
    )]
    UntrustedSet {
        height: u64,
        trusted: B256,
        got: B256,
    },
    #[error("commit certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("header {0} names no next validator set (a block from before the field existed)")]
    NoNextSet(u64),
    #[error("header {height} changes the validator set to {named}; the update must carry it")]
    MissingSet { height: u64, named: B256 },
    #[error("the carried validator set hashes to {carried}, the header names {named}")]
    WrongSet { named: B256, carried: B256 },
    #[error("timestamp {got} of header {height} is not after {latest}, the latest anchored")]
    Timestamp { height: u64, got: u64, latest: u64 },
    #[error(
        "header {height} is at or below {since}, where the trusted set took over: the set \
         that decided it is no longer held"
    )]
    BeforeTrustedSet { height: u64, since: u64 },
}

impl ClientState {
    /// A client that trusts `validators` to decide the headers after `root` (the followed
    /// chain's genesis block, or a later anchor agreed by the client's owner).
    pub fn new(chain_id: u64, root: Anchor, validators: ValidatorSet) -> ClientState {
        ClientState {
            chain_id,
            latest: root,
            validators,
            trusted_since: root.height,
            frozen: None,
        }
    }

    /// Checks `header` (RLP) with its `certificate` (as nodes store them) and moves the
    /// client. `next_validators` is the set the header names for its next height, needed
    /// only when that differs from the trusted set. `anchored(h)` answers the hash the client
    /// anchored at height `h`, if any (the caller keeps them).
    ///
    /// A refused update changes nothing. An update that proves a fork freezes the client
    /// ([`Verdict::Froze`]); the caller stores the evidence.
    pub fn update(
        &mut self,
        header: &[u8],
        certificate: &[u8],
        next_validators: Option<&ValidatorSet>,
        anchored: impl FnOnce(u64) -> Option<B256>,
    ) -> Result<Verdict, ClientError> {
        if let Some(evidence) = &self.frozen {
            return Err(ClientError::Frozen(evidence.height));
        }
        let decoded = decode_header(header)?;
        self.update_decoded(&decoded, header, certificate, next_validators, anchored)
    }

    /// [`ClientState::update`] for a caller that has already decoded `header` (RLP) into
    /// `decoded` (with [`decode_header`]).
    pub fn update_decoded(
        &mut self,
        decoded: &Header,
        header: &[u8],
        certificate: &[u8],
        next_validators: Option<&ValidatorSet>,
        anchored: impl FnOnce(u64) -> Option<B256>,
    ) -> Result<Verdict, ClientError> {
        if let Some(evidence) = &self.frozen {
            return Err(ClientError::Frozen(evidence.height));
        }
        if decoded.chain_id != self.chain_id {
            return Err(ClientError::WrongChain {
                expected: self.chain_id,
                got: decoded.chain_id,
            });
        }
        if decoded.height == 0 {
            return Err(ClientError::Genesis);
        }
        let hash = decoded.hash();
        // The latest header again (the cheap case of a duplicate: no signature to check).
        if decoded.height == self.latest.height && hash == self.latest.hash {
            return Ok(Verdict::Known);
        }
        // At or below the handover the trusted set decided nothing.
        if decoded.height <= self.trusted_since {
            return Err(ClientError::BeforeTrustedSet {
                height: decoded.height,
                since: self.trusted_since,
            });
        }
        let trusted = self.validators.hash();
        if decoded.validators_hash != trusted {
            return Err(ClientError::UntrustedSet {
                height: decoded.height,
                trusted,
                got: decoded.validators_hash,
            });
        }
        verify_certificate(
            self.chain_id,
            certificate,
            decoded.height,
            hash,
            &self.validators,
        )?;

        let known = match decoded.height.cmp(&self.latest.height) {
            std::cmp::Ordering::Equal => Some(self.latest.hash),
            std::cmp::Ordering::Less => anchored(decoded.height),
            std::cmp::Ordering::Greater => None,
        };
        match known {
            Some(known) if known == hash => return Ok(Verdict::Known),
            Some(known) => {
                let evidence = Box::new(Misbehaviour {
                    height: decoded.height,
                    anchored: known,
                    header: header.to_vec(),
                    certificate: certificate.to_vec(),
                });
                self.frozen = Some(evidence.clone());
                return Ok(Verdict::Froze(evidence));
            }
            None if decoded.height < self.latest.height => {
                return Ok(Verdict::Backfilled(Anchor::of(decoded)));
            }
            None => {}
        }

        // Newer than the latest: the client moves, and follows a set change it names.
        if decoded.timestamp_ms <= self.latest.timestamp_ms && self.latest.height > 0 {
            return Err(ClientError::Timestamp {
                height: decoded.height,
                got: decoded.timestamp_ms,
                latest: self.latest.timestamp_ms,
            });
        }
        let named = decoded
            .next_validators_hash
            .ok_or(ClientError::NoNextSet(decoded.height))?;
        let next = if named == trusted {
            None
        } else {
            let carried = next_validators.ok_or(ClientError::MissingSet {
                height: decoded.height,
                named,
            })?;
            let carried_hash = carried.hash();
            if carried_hash != named {
                return Err(ClientError::WrongSet {
                    named,
                    carried: carried_hash,
                });
            }
            Some(carried.clone())
        };
        let anchor = Anchor::of(decoded);
        self.latest = anchor;
        let set_changed = next.is_some();
        if let Some(next) = next {
            self.validators = next;
            self.trusted_since = anchor.height;
        }
        Ok(Verdict::Advanced {
            anchor,
            set_changed,
        })
    }
}

/// Decodes a header with nothing after it.
pub fn decode_header(bytes: &[u8]) -> Result<Header, ClientError> {
    let mut rest = bytes;
    let header = Header::decode(&mut rest).map_err(|e| ClientError::Header(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ClientError::Header(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, Bloom};
    use alloy_rlp::Encodable;
    use ed25519_consensus::SigningKey;
    use std::collections::HashMap;

    const CHAIN: u64 = 77;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from([seed; 32])
    }

    fn set_of(keys: &[SigningKey]) -> ValidatorSet {
        ValidatorSet::from_keys(
            keys.iter()
                .map(|k| (B256::from(k.verification_key().to_bytes()), 1)),
        )
        .expect("set")
    }

    /// The followed chain: its blocks, signed by whichever keys the test says.
    struct Chain {
        keys: Vec<SigningKey>,
        parent: B256,
        height: u64,
    }

    impl Chain {
        fn new(keys: Vec<SigningKey>) -> Chain {
            Chain {
                keys,
                parent: B256::repeat_byte(0xaa),
                height: 0,
            }
        }

        fn header(&self, height: u64, salt: u8, next: &ValidatorSet) -> Header {
            Header {
                chain_id: CHAIN,
                height,
                parent_hash: self.parent,
                timestamp_ms: 1_000 + height,
                proposer: Address::repeat_byte(1),
                transactions_root: B256::ZERO,
                receipts_root: B256::ZERO,
                state_root: B256::repeat_byte(salt),
                logs_bloom: Bloom::ZERO,
                gas_limit: 1,
                gas_used: 0,
                validators_hash: set_of(&self.keys).hash(),
                next_validators_hash: Some(next.hash()),
            }
        }

        /// The next block, keeping the set (or handing over to `next`).
        fn next(&mut self, next: Option<&[SigningKey]>) -> (Vec<u8>, Vec<u8>) {
            self.height += 1;
            let next_set = set_of(next.unwrap_or(&self.keys));
            let header = self.header(self.height, 0, &next_set);
            let signed = sign(&header, &self.keys);
            self.parent = header.hash();
            if let Some(next) = next {
                self.keys = next.to_vec();
            }
            signed
        }
    }

    fn rlp(header: &Header) -> Vec<u8> {
        let mut out = Vec::new();
        header.encode(&mut out);
        out
    }

    /// The header's RLP and a certificate of `signers`' precommits for it.
    fn sign(header: &Header, signers: &[SigningKey]) -> (Vec<u8>, Vec<u8>) {
        let certificate = crate::certificate::certify(CHAIN, header.height, header.hash(), signers);
        (rlp(header), certificate)
    }

    fn client(keys: &[SigningKey]) -> ClientState {
        let root = Anchor {
            height: 0,
            hash: B256::repeat_byte(0xaa),
            state_root: B256::ZERO,
            timestamp_ms: 0,
        };
        ClientState::new(CHAIN, root, set_of(keys))
    }

    fn keys(seeds: std::ops::RangeInclusive<u8>) -> Vec<SigningKey> {
        seeds.map(key).collect()
    }

    #[test]
    fn follows_the_chain_skipping_heights_while_the_set_holds() {
        let mut chain = Chain::new(keys(1..=4));
        let mut c = client(&chain.keys);
        let (h1, c1) = chain.next(None);
        let verdict = c.update(&h1, &c1, None, |_| None).expect("block 1");
        assert!(
            matches!(verdict, Verdict::Advanced { anchor, set_changed: false } if anchor.height == 1)
        );
        // Heights 2 to 4 are skipped: 5 is decided by the same set.
        for _ in 2..=4 {
            chain.next(None);
        }
        let (h5, c5) = chain.next(None);
        assert!(matches!(
            c.update(&h5, &c5, None, |_| None),
            Ok(Verdict::Advanced { anchor, .. }) if anchor.height == 5
        ));
        // The same header again is a cheap no-op.
        assert_eq!(
            c.update(&h5, &c5, None, |_| None).ok(),
            Some(Verdict::Known)
        );
        assert_eq!(c.latest.height, 5);
    }

    #[test]
    fn forged_anchors_are_refused_and_change_nothing() {
        let mut chain = Chain::new(keys(1..=4));
        let mut c = client(&chain.keys);
        let (h1, _) = chain.next(None);
        let header = decode_header(&h1).expect("header");
        let before = c.latest;

        // Signed by keys outside the set.
        let (_, foreign) = sign(&header, &keys(11..=14));
        assert!(matches!(
            c.update(&h1, &foreign, None, |_| None),
            Err(ClientError::Certificate(CertificateError::UnknownSigner(_)))
        ));
        // Two thirds of the power is not more than two thirds.
        let (_, short) = sign(&header, &chain.keys[..2]);
        assert!(matches!(
            c.update(&h1, &short, None, |_| None),
            Err(ClientError::Certificate(
                CertificateError::InsufficientPower { .. }
            ))
        ));
        // Another chain's header, even signed by the trusted keys.
        let mut other = header.clone();
        other.chain_id = CHAIN + 1;
        let (oh, oc) = sign(&other, &chain.keys);
        assert!(matches!(
            c.update(&oh, &oc, None, |_| None),
            Err(ClientError::WrongChain { .. })
        ));
        // A certificate of a different header than the one submitted.
        let mut tampered = header.clone();
        tampered.state_root = B256::repeat_byte(0x66);
        let (_, good) = sign(&header, &chain.keys);
        assert!(matches!(
            c.update(&rlp(&tampered), &good, None, |_| None),
            Err(ClientError::Certificate(
                CertificateError::WrongBlock { .. }
            ))
        ));
        // Garbage and trailing bytes.
        assert!(matches!(
            c.update(b"not a header", &good, None, |_| None),
            Err(ClientError::Header(_))
        ));
        let mut trailing = h1.clone();
        trailing.push(0);
        assert!(matches!(
            c.update(&trailing, &good, None, |_| None),
            Err(ClientError::Header(_))
        ));
        // A header from before nextValidatorsHash existed cannot move the client.
        let mut old = header.clone();
        old.next_validators_hash = None;
        let (oh, oc) = sign(&old, &chain.keys);
        assert!(matches!(
            c.update(&oh, &oc, None, |_| None),
            Err(ClientError::NoNextSet(1))
        ));
        assert_eq!(c.latest, before);
        assert!(c.frozen.is_none());
        // The real one still goes through.
        assert!(c.update(&h1, &good, None, |_| None).is_ok());
    }

    #[test]
    fn set_changes_are_followed_in_order_and_never_skipped() {
        let old = keys(1..=4);
        let new = keys(21..=24);
        let mut chain = Chain::new(old.clone());
        let mut c = client(&old);
        let (h1, c1) = chain.next(None);
        c.update(&h1, &c1, None, |_| None).expect("block 1");
        // Block 2 hands over to the new set; block 3 is the new set's first.
        let (h2, c2) = chain.next(Some(&new));
        let (h3, c3) = chain.next(None);

        // Skipping the handover: block 3 was decided by a set the client does not trust.
        assert!(matches!(
            c.update(&h3, &c3, None, |_| None),
            Err(ClientError::UntrustedSet { height: 3, .. })
        ));
        // The handover must carry the set it names, and that set exactly.
        assert!(matches!(
            c.update(&h2, &c2, None, |_| None),
            Err(ClientError::MissingSet { height: 2, .. })
        ));
        assert!(matches!(
            c.update(&h2, &c2, Some(&set_of(&keys(31..=34))), |_| None),
            Err(ClientError::WrongSet { .. })
        ));
        assert_eq!(c.latest.height, 1, "refused updates change nothing");
        assert!(matches!(
            c.update(&h2, &c2, Some(&set_of(&new)), |_| None),
            Ok(Verdict::Advanced {
                set_changed: true,
                ..
            })
        ));
        assert_eq!(c.validators.hash(), set_of(&new).hash());
        assert!(c.update(&h3, &c3, None, |_| None).is_ok());
        // The old set can no longer move the client.
        let mut forged = decode_header(&h3).expect("header");
        forged.height = 4;
        forged.validators_hash = set_of(&old).hash();
        let (fh, fc) = sign(&forged, &old);
        assert!(matches!(
            c.update(&fh, &fc, None, |_| None),
            Err(ClientError::UntrustedSet { height: 4, .. })
        ));
    }

    #[test]
    fn two_certified_headers_at_one_height_freeze_the_client() {
        let mut chain = Chain::new(keys(1..=4));
        let mut c = client(&chain.keys);
        let mut anchored: HashMap<u64, B256> = HashMap::new();
        for _ in 1..=3 {
            let (h, cert) = chain.next(None);
            match c.update(&h, &cert, None, |_| None).expect("advances") {
                Verdict::Advanced { anchor, .. } => {
                    anchored.insert(anchor.height, anchor.hash);
                }
                other => panic!("{other:?}"),
            }
        }
        // A second block 2, signed by the same validators: a fork.
        let set = set_of(&chain.keys);
        let fork = chain.header(2, 0x99, &set);
        let (fh, fc) = sign(&fork, &chain.keys);
        let verdict = c
            .update(&fh, &fc, None, |h| anchored.get(&h).copied())
            .expect("evidence accepted");
        let Verdict::Froze(evidence) = verdict else {
            panic!("expected a freeze, got {verdict:?}")
        };
        assert_eq!(evidence.height, 2);
        assert_eq!(evidence.anchored, anchored[&2]);
        assert_eq!(evidence.header, fh);
        // Frozen: nothing moves it, not even a valid next header.
        let (h4, c4) = chain.next(None);
        assert!(matches!(
            c.update(&h4, &c4, None, |_| None),
            Err(ClientError::Frozen(2))
        ));
        assert_eq!(c.latest.height, 3);
    }

    #[test]
    fn an_uncertified_conflict_does_not_freeze() {
        let mut chain = Chain::new(keys(1..=4));
        let mut c = client(&chain.keys);
        let (h1, c1) = chain.next(None);
        c.update(&h1, &c1, None, |_| None).expect("block 1");
        let fork = chain.header(1, 0x99, &set_of(&chain.keys));
        // Signed by two of four: not certified, so no evidence of anything.
        let (fh, fc) = sign(&fork, &chain.keys[..2]);
        assert!(c.update(&fh, &fc, None, |_| None).is_err());
        assert!(c.frozen.is_none());
    }

    #[test]
    fn nothing_at_or_below_a_handover_is_judged_by_the_new_set() {
        let (old, new) = (keys(1..=4), keys(21..=24));
        let mut chain = Chain::new(old.clone());
        let mut c = client(&old);
        let (h1, c1) = chain.next(None);
        c.update(&h1, &c1, None, |_| None).expect("block 1");
        chain.next(None); // block 2, skipped
        let (h3, c3) = chain.next(Some(&new));
        c.update(&h3, &c3, Some(&set_of(&new)), |_| None)
            .expect("handover at 3");
        assert_eq!(c.trusted_since, 3);
        // The handover again is a no-op, though the set that decided it is no longer held.
        assert_eq!(
            c.update(&h3, &c3, None, |_| None).ok(),
            Some(Verdict::Known)
        );
        // The new set signs a made-up block 2 (skipped) and a fork of block 1 (anchored):
        // neither backfills nor freezes anything.
        let forged = Chain {
            keys: new.clone(),
            parent: B256::repeat_byte(0x55),
            height: 0,
        };
        let set = set_of(&new);
        for (height, anchored) in [(2, None), (1, Some(c.latest.hash))] {
            let (fh, fc) = sign(&forged.header(height, 0x42, &set), &new);
            assert!(matches!(
                c.update(&fh, &fc, None, |_| anchored),
                Err(ClientError::BeforeTrustedSet { since: 3, .. })
            ));
        }
        assert!(c.frozen.is_none());
        assert_eq!(c.latest.height, 3);
    }

    #[test]
    fn a_skipped_older_height_is_backfilled_without_moving_the_client() {
        let mut chain = Chain::new(keys(1..=4));
        let mut c = client(&chain.keys);
        let (h1, c1) = chain.next(None);
        let (h2, c2) = chain.next(None);
        c.update(&h2, &c2, None, |_| None).expect("block 2");
        assert!(matches!(
            c.update(&h1, &c1, None, |_| None),
            Ok(Verdict::Backfilled(anchor)) if anchor.height == 1
        ));
        assert_eq!(c.latest.height, 2);
    }
}
