//! Wire encoding of every consensus, streaming, sync and WAL message (postcard over serde
//! mirror types). Decoding never panics: malformed input from a peer is an error.

use alloy_primitives::{Address, B256};
use bytes::Bytes;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_app_channel::app::types::{PeerId, ProposedValue, SignedConsensusMsg};
use malachitebft_codec::{Codec, HasEncodedLen};
use malachitebft_core_types::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_signing_ed25519::Signature;
use malachitebft_sync::{ValueRequest, ValueResponse};
use serde::{Deserialize, Serialize};

use crate::context::{
    signature_from_bytes, BlockHash, Height, Proposal, ProposalPart, TrellisContext,
    ValidatorAddress, Vote,
};

/// Largest message the codec accepts; bigger input is rejected before parsing.
pub const MAX_MESSAGE_BYTES: usize = 80 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct TrellisCodec;

fn sig_bytes(sig: &Signature) -> Bytes {
    Bytes::copy_from_slice(&sig.to_bytes())
}

fn sig_from(bytes: &[u8]) -> Result<Signature, CodecError> {
    signature_from_bytes(bytes).ok_or(CodecError::Invalid("signature"))
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Bytes, CodecError> {
    Ok(Bytes::from(postcard::to_stdvec(value)?))
}

fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(postcard::from_bytes(bytes)?)
}

/// The encoding of a vote, shared with light clients (`trellis_light::WireVote`).
use trellis_light::WireVote;

impl From<&Vote> for WireVote {
    fn from(v: &Vote) -> Self {
        WireVote {
            prevote: v.typ == VoteType::Prevote,
            height: v.height.0,
            round: v.round.as_u32(),
            value: match &v.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(h) => Some(h.0),
            },
            validator: v.validator_address.0,
        }
    }
}

fn vote_from_wire(w: WireVote) -> Vote {
    {
        Vote {
            typ: if w.prevote {
                VoteType::Prevote
            } else {
                VoteType::Precommit
            },
            height: Height(w.height),
            round: Round::from(w.round),
            value: match w.value {
                None => NilOrVal::Nil,
                Some(h) => NilOrVal::Val(BlockHash(h)),
            },
            validator_address: ValidatorAddress(w.validator),
            extension: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireProposal {
    height: u64,
    round: Option<u32>,
    value: B256,
    pol_round: Option<u32>,
    validator: Address,
}

impl From<&Proposal> for WireProposal {
    fn from(p: &Proposal) -> Self {
        WireProposal {
            height: p.height.0,
            round: p.round.as_u32(),
            value: p.value.0,
            pol_round: p.pol_round.as_u32(),
            validator: p.validator_address.0,
        }
    }
}

impl WireProposal {
    fn into_proposal(self) -> Proposal {
        Proposal {
            height: Height(self.height),
            round: Round::from(self.round),
            value: BlockHash(self.value),
            pol_round: Round::from(self.pol_round),
            validator_address: ValidatorAddress(self.validator),
        }
    }
}

/// Canonical bytes that a validator signs for a vote (without its extension).
pub fn vote_sign_bytes(chain_id: u64, vote: &Vote) -> Vec<u8> {
    WireVote::from(vote).sign_bytes(chain_id)
}

/// Canonical bytes that a proposer signs for a proposal message.
pub fn proposal_sign_bytes(chain_id: u64, proposal: &Proposal) -> Vec<u8> {
    let mut out = b"trellis/proposal/".to_vec();
    out.extend_from_slice(&chain_id.to_be_bytes());
    out.extend(postcard::to_stdvec(&WireProposal::from(proposal)).unwrap_or_default());
    out
}

#[derive(Serialize, Deserialize)]
struct WireSignedVote {
    vote: WireVote,
    signature: Bytes,
    extension: Option<(Bytes, Bytes)>,
}

fn encode_signed_vote(v: &SignedMessage<TrellisContext, Vote>) -> WireSignedVote {
    WireSignedVote {
        vote: WireVote::from(&v.message),
        signature: sig_bytes(&v.signature),
        extension: v
            .message
            .extension
            .as_ref()
            .map(|e| (e.message.clone(), sig_bytes(&e.signature))),
    }
}

fn decode_signed_vote(
    w: WireSignedVote,
) -> Result<SignedMessage<TrellisContext, Vote>, CodecError> {
    let mut vote = vote_from_wire(w.vote);
    if let Some((data, sig)) = w.extension {
        vote.extension = Some(SignedMessage::new(data, sig_from(&sig)?));
    }
    Ok(SignedMessage::new(vote, sig_from(&w.signature)?))
}

#[derive(Serialize, Deserialize)]
enum WireConsensusMsg {
    Vote(WireSignedVote),
    Proposal(WireProposal, Bytes),
}

impl Codec<SignedConsensusMsg<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<SignedConsensusMsg<TrellisContext>, CodecError> {
        Ok(match from_bytes::<WireConsensusMsg>(&bytes)? {
            WireConsensusMsg::Vote(v) => SignedConsensusMsg::Vote(decode_signed_vote(v)?),
            WireConsensusMsg::Proposal(p, sig) => {
                SignedConsensusMsg::Proposal(SignedMessage::new(p.into_proposal(), sig_from(&sig)?))
            }
        })
    }

    fn encode(&self, msg: &SignedConsensusMsg<TrellisContext>) -> Result<Bytes, CodecError> {
        to_bytes(&match msg {
            SignedConsensusMsg::Vote(v) => WireConsensusMsg::Vote(encode_signed_vote(v)),
            SignedConsensusMsg::Proposal(p) => {
                WireConsensusMsg::Proposal(WireProposal::from(&p.message), sig_bytes(&p.signature))
            }
        })
    }
}

#[derive(Serialize, Deserialize)]
struct WireRoundSignature {
    prevote: bool,
    value: Option<B256>,
    address: Address,
    signature: Bytes,
}

#[derive(Serialize, Deserialize)]
struct WirePolka {
    height: u64,
    round: Option<u32>,
    value: B256,
    signatures: Vec<(Address, Bytes)>,
}

impl From<&PolkaCertificate<TrellisContext>> for WirePolka {
    fn from(c: &PolkaCertificate<TrellisContext>) -> Self {
        WirePolka {
            height: c.height.0,
            round: c.round.as_u32(),
            value: c.value_id.0,
            signatures: c
                .polka_signatures
                .iter()
                .map(|s| (s.address.0, sig_bytes(&s.signature)))
                .collect(),
        }
    }
}

impl WirePolka {
    fn into_certificate(self) -> Result<PolkaCertificate<TrellisContext>, CodecError> {
        Ok(PolkaCertificate {
            height: Height(self.height),
            round: Round::from(self.round),
            value_id: BlockHash(self.value),
            polka_signatures: self
                .signatures
                .into_iter()
                .map(|(a, s)| {
                    Ok(PolkaSignature {
                        address: ValidatorAddress(a),
                        signature: sig_from(&s)?,
                    })
                })
                .collect::<Result<_, CodecError>>()?,
        })
    }
}

/// Polka certificates as the write-ahead log keeps them.
impl Codec<PolkaCertificate<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<PolkaCertificate<TrellisContext>, CodecError> {
        from_bytes::<WirePolka>(&bytes)?.into_certificate()
    }

    fn encode(&self, msg: &PolkaCertificate<TrellisContext>) -> Result<Bytes, CodecError> {
        to_bytes(&WirePolka::from(msg))
    }
}

#[derive(Serialize, Deserialize)]
struct WireValidatorProof {
    public_key: Bytes,
    peer_id: Bytes,
    signature: Bytes,
}

/// The proof a validator sends on connect that its consensus key and its network identity
/// belong together.
impl Codec<ValidatorProof<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<TrellisContext>, CodecError> {
        let w: WireValidatorProof = from_bytes(&bytes)?;
        Ok(ValidatorProof::new(
            w.public_key.to_vec(),
            w.peer_id.to_vec(),
            sig_from(&w.signature)?,
        ))
    }

    fn encode(&self, msg: &ValidatorProof<TrellisContext>) -> Result<Bytes, CodecError> {
        to_bytes(&WireValidatorProof {
            public_key: Bytes::copy_from_slice(&msg.public_key),
            peer_id: Bytes::copy_from_slice(&msg.peer_id),
            signature: sig_bytes(&msg.signature),
        })
    }
}

#[derive(Serialize, Deserialize)]
enum WireLiveness {
    Vote(WireSignedVote),
    Polka(WirePolka),
    Round {
        height: u64,
        round: Option<u32>,
        skip: bool,
        signatures: Vec<WireRoundSignature>,
    },
}

impl Codec<LivenessMsg<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<LivenessMsg<TrellisContext>, CodecError> {
        Ok(match from_bytes::<WireLiveness>(&bytes)? {
            WireLiveness::Vote(v) => LivenessMsg::Vote(decode_signed_vote(v)?),
            WireLiveness::Polka(p) => LivenessMsg::PolkaCertificate(p.into_certificate()?),
            WireLiveness::Round {
                height,
                round,
                skip,
                signatures,
            } => LivenessMsg::SkipRoundCertificate(RoundCertificate {
                height: Height(height),
                round: Round::from(round),
                cert_type: if skip {
                    RoundCertificateType::Skip
                } else {
                    RoundCertificateType::Precommit
                },
                round_signatures: signatures
                    .into_iter()
                    .map(|s| {
                        Ok(RoundSignature {
                            vote_type: if s.prevote {
                                VoteType::Prevote
                            } else {
                                VoteType::Precommit
                            },
                            value_id: s.value.map(BlockHash).map_or(NilOrVal::Nil, NilOrVal::Val),
                            address: ValidatorAddress(s.address),
                            signature: sig_from(&s.signature)?,
                        })
                    })
                    .collect::<Result<_, CodecError>>()?,
            }),
        })
    }

    fn encode(&self, msg: &LivenessMsg<TrellisContext>) -> Result<Bytes, CodecError> {
        to_bytes(&match msg {
            LivenessMsg::Vote(v) => WireLiveness::Vote(encode_signed_vote(v)),
            LivenessMsg::PolkaCertificate(c) => WireLiveness::Polka(WirePolka::from(c)),
            LivenessMsg::SkipRoundCertificate(c) => WireLiveness::Round {
                height: c.height.0,
                round: c.round.as_u32(),
                skip: c.cert_type == RoundCertificateType::Skip,
                signatures: c
                    .round_signatures
                    .iter()
                    .map(|s| WireRoundSignature {
                        prevote: s.vote_type == VoteType::Prevote,
                        value: match &s.value_id {
                            NilOrVal::Nil => None,
                            NilOrVal::Val(h) => Some(h.0),
                        },
                        address: s.address.0,
                        signature: sig_bytes(&s.signature),
                    })
                    .collect(),
            },
        })
    }
}

#[derive(Serialize, Deserialize)]
enum WirePart {
    Init {
        height: u64,
        round: Option<u32>,
        pol_round: Option<u32>,
        proposer: Address,
    },
    Data(Bytes),
    Fin(Bytes),
}

impl From<&ProposalPart> for WirePart {
    fn from(p: &ProposalPart) -> Self {
        match p {
            ProposalPart::Init {
                height,
                round,
                pol_round,
                proposer,
            } => WirePart::Init {
                height: height.0,
                round: round.as_u32(),
                pol_round: pol_round.as_u32(),
                proposer: proposer.0,
            },
            ProposalPart::Data(d) => WirePart::Data(d.clone()),
            ProposalPart::Fin(s) => WirePart::Fin(sig_bytes(s)),
        }
    }
}

impl WirePart {
    fn into_part(self) -> Result<ProposalPart, CodecError> {
        Ok(match self {
            WirePart::Init {
                height,
                round,
                pol_round,
                proposer,
            } => ProposalPart::Init {
                height: Height(height),
                round: Round::from(round),
                pol_round: Round::from(pol_round),
                proposer: ValidatorAddress(proposer),
            },
            WirePart::Data(d) => ProposalPart::Data(d),
            WirePart::Fin(s) => ProposalPart::Fin(sig_from(&s)?),
        })
    }
}

impl Codec<ProposalPart> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ProposalPart, CodecError> {
        from_bytes::<WirePart>(&bytes)?.into_part()
    }

    fn encode(&self, msg: &ProposalPart) -> Result<Bytes, CodecError> {
        to_bytes(&WirePart::from(msg))
    }
}

#[derive(Serialize, Deserialize)]
struct WireStream {
    stream_id: Bytes,
    sequence: u64,
    /// `None` marks the end of the stream.
    part: Option<WirePart>,
}

impl Codec<StreamMessage<ProposalPart>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<ProposalPart>, CodecError> {
        let w: WireStream = from_bytes(&bytes)?;
        Ok(StreamMessage {
            stream_id: StreamId::new(w.stream_id),
            sequence: w.sequence,
            content: match w.part {
                None => StreamContent::Fin,
                Some(p) => StreamContent::Data(p.into_part()?),
            },
        })
    }

    fn encode(&self, msg: &StreamMessage<ProposalPart>) -> Result<Bytes, CodecError> {
        to_bytes(&WireStream {
            stream_id: msg.stream_id.to_bytes(),
            sequence: msg.sequence,
            part: match &msg.content {
                StreamContent::Fin => None,
                StreamContent::Data(p) => Some(WirePart::from(p)),
            },
        })
    }
}

#[derive(Serialize, Deserialize)]
struct WireProposedValue {
    height: u64,
    round: Option<u32>,
    valid_round: Option<u32>,
    proposer: Address,
    value: B256,
    valid: bool,
}

impl Codec<ProposedValue<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ProposedValue<TrellisContext>, CodecError> {
        let w: WireProposedValue = from_bytes(&bytes)?;
        Ok(ProposedValue {
            height: Height(w.height),
            round: Round::from(w.round),
            valid_round: Round::from(w.valid_round),
            proposer: ValidatorAddress(w.proposer),
            value: BlockHash(w.value),
            validity: if w.valid {
                Validity::Valid
            } else {
                Validity::Invalid
            },
        })
    }

    fn encode(&self, msg: &ProposedValue<TrellisContext>) -> Result<Bytes, CodecError> {
        to_bytes(&WireProposedValue {
            height: msg.height.0,
            round: msg.round.as_u32(),
            valid_round: msg.valid_round.as_u32(),
            proposer: msg.proposer.0,
            value: msg.value.0,
            valid: msg.validity == Validity::Valid,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct WireStatus {
    peer_id: Bytes,
    tip_height: u64,
    history_min_height: u64,
}

impl Codec<Status<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<Status<TrellisContext>, CodecError> {
        let w: WireStatus = from_bytes(&bytes)?;
        Ok(Status {
            peer_id: PeerId::from_bytes(&w.peer_id).map_err(|_| CodecError::Invalid("peer id"))?,
            tip_height: Height(w.tip_height),
            history_min_height: Height(w.history_min_height),
        })
    }

    fn encode(&self, msg: &Status<TrellisContext>) -> Result<Bytes, CodecError> {
        to_bytes(&WireStatus {
            peer_id: Bytes::from(msg.peer_id.to_bytes()),
            tip_height: msg.tip_height.0,
            history_min_height: msg.history_min_height.0,
        })
    }
}

/// A request for the decided blocks of heights `start..=end`.
impl Codec<Request<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<Request<TrellisContext>, CodecError> {
        let (start, end): (u64, u64) = from_bytes(&bytes)?;
        if start > end {
            return Err(CodecError::Invalid("height range"));
        }
        Ok(Request::ValueRequest(ValueRequest::new(
            Height(start)..=Height(end),
        )))
    }

    fn encode(&self, msg: &Request<TrellisContext>) -> Result<Bytes, CodecError> {
        match msg {
            Request::ValueRequest(r) => to_bytes(&(r.range.start().0, r.range.end().0)),
        }
    }
}

/// A commit certificate as stored and sent to syncing peers: its encoding is
/// `trellis_light::Certificate`'s, which light clients decode.
fn wire_certificate(c: &CommitCertificate<TrellisContext>) -> trellis_light::Certificate {
    trellis_light::Certificate {
        height: c.height.0,
        round: c.round.as_u32(),
        block_hash: c.value_id.0,
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| (s.address.0, sig_bytes(&s.signature)))
            .collect(),
    }
}

fn from_wire_certificate(
    w: trellis_light::Certificate,
) -> Result<CommitCertificate<TrellisContext>, CodecError> {
    Ok(CommitCertificate {
        height: Height(w.height),
        round: Round::from(w.round),
        value_id: BlockHash(w.block_hash),
        commit_signatures: w
            .signatures
            .into_iter()
            .map(|(a, s)| Ok(CommitSignature::new(ValidatorAddress(a), sig_from(&s)?)))
            .collect::<Result<_, CodecError>>()?,
    })
}

pub fn encode_certificate(c: &CommitCertificate<TrellisContext>) -> Vec<u8> {
    trellis_light::encode_certificate(&wire_certificate(c))
}

pub fn decode_certificate(bytes: &[u8]) -> Result<CommitCertificate<TrellisContext>, CodecError> {
    from_wire_certificate(
        trellis_light::decode_certificate(bytes)
            .map_err(|_| CodecError::Invalid("commit certificate"))?,
    )
}

/// One precommit signature of a certificate: signer, signature, and the vote extension
/// (data, signature) if one was attached.
type WireExtendedSignature = (Address, Bytes, Option<(Bytes, Bytes)>);

/// A commit certificate with its (optional) vote extensions, as sync carries it.
#[derive(Serialize, Deserialize)]
struct WireExtendedCertificate {
    height: u64,
    round: Option<u32>,
    value: B256,
    signatures: Vec<WireExtendedSignature>,
}

fn wire_extended(c: &ExtendedCommitCertificate<TrellisContext>) -> WireExtendedCertificate {
    WireExtendedCertificate {
        height: c.height.0,
        round: c.round.as_u32(),
        value: c.value_id.0,
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| {
                (
                    s.address.0,
                    sig_bytes(&s.signature),
                    s.extension
                        .as_ref()
                        .map(|e| (e.message.clone(), sig_bytes(&e.signature))),
                )
            })
            .collect(),
    }
}

fn from_wire_extended(
    w: WireExtendedCertificate,
) -> Result<ExtendedCommitCertificate<TrellisContext>, CodecError> {
    Ok(ExtendedCommitCertificate {
        height: Height(w.height),
        round: Round::from(w.round),
        value_id: BlockHash(w.value),
        commit_signatures: w
            .signatures
            .into_iter()
            .map(|(a, s, ext)| {
                let extension = match ext {
                    None => None,
                    Some((data, sig)) => Some(SignedMessage::new(data, sig_from(&sig)?)),
                };
                Ok(ExtendedCommitSignature::new(
                    ValidatorAddress(a),
                    sig_from(&s)?,
                    extension,
                ))
            })
            .collect::<Result<_, CodecError>>()?,
    })
}

#[derive(Serialize, Deserialize)]
struct WireResponse {
    start_height: u64,
    values: Vec<(Bytes, WireExtendedCertificate)>,
}

fn wire_response(r: &ValueResponse<TrellisContext>) -> WireResponse {
    WireResponse {
        start_height: r.start_height.0,
        values: r
            .values
            .iter()
            .map(|v| (v.value_bytes.clone(), wire_extended(&v.certificate)))
            .collect(),
    }
}

/// Decided blocks with their certificates, consecutive from `start_height`.
impl Codec<Response<TrellisContext>> for TrellisCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<Response<TrellisContext>, CodecError> {
        let w: WireResponse = from_bytes(&bytes)?;
        let values = w
            .values
            .into_iter()
            .map(|(value_bytes, cert)| {
                Ok(RawDecidedValue::new(value_bytes, from_wire_extended(cert)?))
            })
            .collect::<Result<_, CodecError>>()?;
        Ok(Response::ValueResponse(ValueResponse::new(
            Height(w.start_height),
            values,
        )))
    }

    fn encode(&self, msg: &Response<TrellisContext>) -> Result<Bytes, CodecError> {
        match msg {
            Response::ValueResponse(r) => to_bytes(&wire_response(r)),
        }
    }
}

impl HasEncodedLen<Response<TrellisContext>> for TrellisCodec {
    fn encoded_len(&self, msg: &Response<TrellisContext>) -> Result<usize, CodecError> {
        let Response::ValueResponse(r) = msg;
        Ok(postcard::experimental::serialized_size(&wire_response(r))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Ed25519Signer;
    use trellis_crypto::NodeKey;

    fn signer() -> Ed25519Signer {
        Ed25519Signer::new(NodeKey::generate().private().clone(), 7)
    }

    #[test]
    fn consensus_messages_roundtrip() {
        let s = signer();
        let vote = Vote {
            typ: VoteType::Precommit,
            height: Height(9),
            round: Round::new(2),
            value: NilOrVal::Val(BlockHash(B256::repeat_byte(3))),
            validator_address: ValidatorAddress(Address::repeat_byte(1)),
            extension: None,
        };
        let msg = SignedConsensusMsg::Vote(s.sign_vote_now(vote));
        let bytes = TrellisCodec.encode(&msg).expect("encode");
        let back: SignedConsensusMsg<TrellisContext> = TrellisCodec.decode(bytes).expect("decode");
        assert_eq!(back, msg);

        let proposal = Proposal {
            height: Height(9),
            round: Round::new(0),
            value: BlockHash(B256::repeat_byte(4)),
            pol_round: Round::Nil,
            validator_address: ValidatorAddress(Address::repeat_byte(2)),
        };
        let msg = SignedConsensusMsg::Proposal(s.sign_proposal_now(proposal));
        let bytes = TrellisCodec.encode(&msg).expect("encode");
        let back: SignedConsensusMsg<TrellisContext> = TrellisCodec.decode(bytes).expect("decode");
        assert_eq!(back, msg);
    }

    #[test]
    fn stream_messages_roundtrip() {
        for content in [
            StreamContent::Data(ProposalPart::Data(Bytes::from_static(b"chunk"))),
            StreamContent::Data(ProposalPart::Init {
                height: Height(1),
                round: Round::new(0),
                pol_round: Round::Nil,
                proposer: ValidatorAddress(Address::ZERO),
            }),
            StreamContent::Fin,
        ] {
            let msg = StreamMessage {
                stream_id: StreamId::new(Bytes::from_static(b"id")),
                sequence: 3,
                content,
            };
            let bytes = TrellisCodec.encode(&msg).expect("encode");
            let back: StreamMessage<ProposalPart> = TrellisCodec.decode(bytes).expect("decode");
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [&b""[..], b"\xff\xff\xff\xff\xff", b"\x01\x02", &[0u8; 100]] {
            let _ = <TrellisCodec as Codec<SignedConsensusMsg<TrellisContext>>>::decode(
                &TrellisCodec,
                Bytes::copy_from_slice(input),
            );
            let _ = <TrellisCodec as Codec<Response<TrellisContext>>>::decode(
                &TrellisCodec,
                Bytes::copy_from_slice(input),
            );
            let _ = <TrellisCodec as Codec<StreamMessage<ProposalPart>>>::decode(
                &TrellisCodec,
                Bytes::copy_from_slice(input),
            );
        }
        assert!(decode_certificate(b"\x05").is_err());
    }
}
