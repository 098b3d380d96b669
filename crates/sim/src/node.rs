//! One simulated node: Malachite's consensus state machine driven with `process!`, Trellis's
//! host (`AppLoop`) and chain (`Chain` on an in-memory redb), and the glue the engine's
//! actors provide in production — timers, the write-ahead log, message routing, value sync —
//! written here to mirror `arc-malachitebft-engine` 0.8.2 (`consensus.rs`, `wal.rs`) step for
//! step, on simulated time.

use alloy_primitives::B256;
use bytes::Bytes;
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use malachitebft_core_consensus::{
    Effect, Error as ConsensusError, Input, LivenessMsg, Params, Resumable, Resume,
    SignedConsensusMsg, State, ValuePayload,
};
use malachitebft_core_types::{
    NilOrVal, Round, SignedMessage, ThresholdParams, Timeout, ValidatorProof, Validity,
    ValueOrigin, ValueResponse, VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Error as SigningError, VerificationResult, Verifier, VerifierExt};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tracing::debug;
use trellis_consensus::app::{stream_block, AppLoop, Application, VerifyError};
use trellis_consensus::codec::{proposal_sign_bytes, vote_sign_bytes};
use trellis_consensus::context::{BlockHash, Height, Proposal, ProposalPart, Vote};
use trellis_consensus::guard::{GuardError, MemorySignLog, SignGuard};
use trellis_consensus::{
    Ed25519Signer, Ed25519Verifier, LinearTimeouts, TrellisContext, ValidatorAddress, ValidatorSet,
};
use trellis_node::Chain;

use crate::net::{Time, MS};

pub type Ctx = TrellisContext;

/// What travels between nodes.
#[derive(Clone, Debug)]
pub enum Message {
    Consensus(SignedConsensusMsg<Ctx>),
    Liveness(LivenessMsg<Ctx>),
    Part(StreamMessage<ProposalPart>),
    /// A node's committed height, as Malachite's sync status says.
    Status {
        tip: u64,
    },
    SyncRequest {
        start: u64,
        end: u64,
    },
    SyncResponse {
        values: Vec<RawDecidedValue<Ctx>>,
    },
    /// Transactions gossiped from the node a client gave them to.
    Txs(Vec<Bytes>),
}

/// Work a node defers to a later moment of simulated time.
#[derive(Clone, Debug)]
pub enum Later {
    /// Build the value to propose (after waiting for transactions, as a proposer does).
    GetValue {
        height: Height,
        round: Round,
        timeout: Timeout,
    },
}

/// What a node asks the world to do.
#[derive(Debug)]
pub enum Out {
    Broadcast(Message),
    Send(usize, Message),
    /// A byzantine node tells half of the others one thing and the rest another.
    Split(Box<(Message, Message)>),
    Timer {
        timeout: Timeout,
        after: Time,
        generation: u64,
    },
    Later {
        after: Time,
        later: Later,
    },
    /// The node committed a block at this height.
    Committed(u64),
    /// The node found invalid a block `proposer` streamed, or (`synced`) a block a commit
    /// certificate says was decided. An honest node must never find an honest proposer's
    /// block invalid, nor a decided one: that would be non-determinism.
    Refused {
        proposer: ValidatorAddress,
        height: u64,
        synced: bool,
    },
}

/// How a byzantine validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Signs two conflicting votes (and proposals) for each one it casts, and tells each half
    /// of the network a different one.
    Equivocate,
    /// Sends, beside its real messages, votes with forged signatures, signed proposal streams
    /// of bytes that are no block, and sync answers with forged certificates.
    Garbage,
    /// Proposes blocks that claim a wrong state root.
    BadBlocks,
    /// Stays silent.
    Silent,
}

/// The consensus application of a simulated node: the real chain, called synchronously.
pub struct SimApp {
    pub chain: Chain,
}

#[async_trait::async_trait]
impl Application for SimApp {
    type Error = trellis_node::ChainError;

    fn committed_height(&self) -> u64 {
        self.chain.height()
    }

    fn validator_set(&self, height: u64) -> Option<ValidatorSet> {
        self.chain.validators_at(height)
    }

    async fn build_block(
        &self,
        height: u64,
        round: u32,
        proposer: alloy_primitives::Address,
        _deadline: std::time::Instant,
    ) -> Result<(B256, Bytes), trellis_node::ChainError> {
        self.chain.build_blocking(height, round, proposer)
    }

    async fn built_block(&self, height: u64, round: u32) -> Option<(B256, Bytes)> {
        self.chain.built_proposal(height, round)
    }

    async fn verify_block(&self, height: u64, block: Bytes) -> Result<B256, VerifyError> {
        self.chain.verify_blocking(height, block)
    }

    async fn commit_block(
        &self,
        height: u64,
        hash: B256,
        certificate: Vec<u8>,
    ) -> Result<(), trellis_node::ChainError> {
        self.chain.commit_blocking(height, hash, certificate)
    }

    fn decided_block(&self, height: u64) -> Option<(Bytes, Vec<u8>)> {
        self.chain.decided(height)
    }

    async fn kept_block(&self, height: u64, hash: B256) -> Option<Bytes> {
        self.chain.kept_proposal(height, hash)
    }
}

/// What was signed, the signature and the key.
type SignedBytes = (Vec<u8>, [u8; 64], [u8; 32]);

/// Ed25519 verification as the nodes do it, each distinct (message, signature, key) checked
/// once per world: every honest node verifies the same votes, and a simulation that pays for
/// each check n times spends most of its time there. The verdict is the real one.
#[derive(Clone)]
pub struct SharedVerifier {
    inner: Ed25519Verifier,
    chain_id: u64,
    verdicts: Arc<parking_lot::Mutex<HashMap<SignedBytes, bool>>>,
}

impl SharedVerifier {
    pub fn new(chain_id: u64) -> SharedVerifier {
        SharedVerifier {
            inner: Ed25519Verifier::new(chain_id),
            chain_id,
            verdicts: Default::default(),
        }
    }

    fn remember(
        &self,
        bytes: Vec<u8>,
        signature: &malachitebft_signing_ed25519::Signature,
        key: &malachitebft_signing_ed25519::PublicKey,
        check: impl FnOnce() -> bool,
    ) -> bool {
        let id = (bytes, signature.to_bytes(), key.as_bytes().to_owned());
        let mut verdicts = self.verdicts.lock();
        *verdicts.entry(id).or_insert_with(check)
    }

    pub fn vote_is_valid(
        &self,
        vote: &Vote,
        signature: &malachitebft_signing_ed25519::Signature,
        key: &malachitebft_signing_ed25519::PublicKey,
    ) -> bool {
        self.remember(vote_sign_bytes(self.chain_id, vote), signature, key, || {
            self.inner.vote_is_valid(vote, signature, key)
        })
    }

    pub fn proposal_is_valid(
        &self,
        proposal: &Proposal,
        signature: &malachitebft_signing_ed25519::Signature,
        key: &malachitebft_signing_ed25519::PublicKey,
    ) -> bool {
        self.remember(
            proposal_sign_bytes(self.chain_id, proposal),
            signature,
            key,
            || self.inner.proposal_is_valid(proposal, signature, key),
        )
    }
}

#[async_trait::async_trait]
impl Verifier<Ctx> for SharedVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &malachitebft_signing_ed25519::Signature,
        public_key: &malachitebft_signing_ed25519::PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(
            self.vote_is_valid(vote, signature, public_key),
        ))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &malachitebft_signing_ed25519::Signature,
        public_key: &malachitebft_signing_ed25519::PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(
            self.proposal_is_valid(proposal, signature, public_key),
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<Ctx>,
        extension: &Bytes,
        signature: &malachitebft_signing_ed25519::Signature,
        public_key: &malachitebft_signing_ed25519::PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        self.inner
            .verify_signed_vote_extension(scope, extension, signature, public_key)
            .await
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<Ctx>,
    ) -> Result<VerificationResult, SigningError> {
        self.inner.verify_validator_proof(proof).await
    }
}

/// The write-ahead log, as the engine's WAL actor keeps it: entries of one height (its
/// sequence); appends are durable once flushed, and a crash loses what was not.
#[derive(Default)]
pub struct Wal {
    sequence: u64,
    durable: Vec<Input<Ctx>>,
    pending: Vec<Input<Ctx>>,
}

impl Wal {
    fn flush(&mut self) {
        self.durable.append(&mut self.pending);
    }

    fn reset(&mut self, height: u64) {
        self.sequence = height;
        self.durable.clear();
        self.pending.clear();
    }

    /// Entries to replay when `height` starts (none if the log belongs to another height).
    fn started(&mut self, height: u64) -> Vec<Input<Ctx>> {
        if self.sequence == height {
            self.durable.clone()
        } else {
            self.reset(height);
            Vec::new()
        }
    }

    /// What survives a killed process: every append (the engine writes each to its file at
    /// once; flushing only fsyncs).
    pub fn kill(&mut self) {
        self.flush();
    }

    /// What survives a power loss: what was flushed.
    pub fn power_loss(&mut self) {
        self.pending.clear();
    }
}

/// Local inputs a node feeds itself after the current step (the engine's self-casts).
enum Local {
    Input(Input<Ctx>),
    StartHeight(Height, HeightParams<Ctx>, bool),
}

/// The simulated value sync: peers' tips, the request in flight, values received.
#[derive(Default)]
struct Sync {
    tips: Vec<u64>,
    inflight: Option<(usize, Time)>,
    received: BTreeMap<u64, (usize, RawDecidedValue<Ctx>)>,
    fed: Option<u64>,
}

impl Sync {
    /// Forgets a value that failed its checks, so that the height is asked for again.
    fn discard(&mut self, height: u64) {
        self.received.remove(&height);
        self.inflight = None;
        self.fed = None;
    }
}

/// One running incarnation of a node (a crash drops it; the disk and WAL stay with the
/// world).
pub struct SimNode {
    pub index: usize,
    pub chain: Chain,
    address: ValidatorAddress,
    signer: Ed25519Signer,
    verifier: SharedVerifier,
    ctx: Ctx,
    timeouts: LinearTimeouts,
    host: AppLoop<SimApp>,
    channels: Channels<Ctx>,
    parts: tokio::sync::mpsc::Receiver<NetworkMsg<Ctx>>,
    consensus: Option<State<Ctx>>,
    metrics: malachitebft_metrics::Metrics,
    timers: HashMap<Timeout, u64>,
    generation: u64,
    pub is_validator: bool,
    recovering: bool,
    local: VecDeque<Local>,
    sync: Sync,
    peers: Vec<PeerId>,
    pub byzantine: Option<Byzantine>,
    thresholds: ThresholdParams,
    /// Kill the process at its next decision, right after the log is flushed and before the
    /// block is committed (set by the world).
    pub crash_at_decide: bool,
    /// The process was killed in the middle of a step: the number of outputs it had produced
    /// before (the rest never happened).
    pub killed_after: Option<usize>,
    /// Why this node left consensus, if it did (an honest node must never).
    pub error: Option<String>,
}

fn blocking<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

impl SimNode {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        chain: Chain,
        key: malachitebft_signing_ed25519::PrivateKey,
        chain_id: u64,
        timeouts: LinearTimeouts,
        peers: Vec<PeerId>,
        byzantine: Option<Byzantine>,
        verifier: SharedVerifier,
        thresholds: ThresholdParams,
        signed: MemorySignLog,
    ) -> Result<SimNode, GuardError> {
        if byzantine == Some(Byzantine::BadBlocks) {
            chain.inject_garbage_blocks();
        }
        let signer = Ed25519Signer::new(key.clone(), chain_id)
            .with_guard(Arc::new(SignGuard::open(signed)?));
        let address = ValidatorAddress::from_public_key(&key.public_key());
        let (network, parts) = tokio::sync::mpsc::channel(4_096);
        let channels = Channels {
            consensus: tokio::sync::mpsc::channel(1).1,
            network,
            events: Default::default(),
            requests: tokio::sync::mpsc::channel(1).0,
            net_requests: tokio::sync::mpsc::channel(1).0,
        };
        let host = AppLoop::new(
            chain_id,
            address,
            signer.clone(),
            timeouts,
            Arc::new(SimApp {
                chain: chain.clone(),
            }),
        );
        let n = peers.len();
        Ok(SimNode {
            index,
            chain,
            address,
            verifier,
            signer,
            ctx: TrellisContext { chain_id },
            timeouts,
            host,
            channels,
            parts,
            consensus: None,
            metrics: malachitebft_metrics::Metrics::new(),
            timers: HashMap::new(),
            generation: 0,
            is_validator: false,
            recovering: false,
            local: VecDeque::new(),
            sync: Sync {
                tips: vec![0; n],
                ..Default::default()
            },
            peers,
            byzantine,
            error: None,
            thresholds,
            crash_at_decide: false,
            killed_after: None,
        })
    }

    /// The height consensus is deciding.
    pub fn consensus_height(&self) -> u64 {
        self.consensus.as_ref().map_or(0, |s| s.height().0)
    }

    /// Signs through the double-sign guard. A refusal stops the engine; here it fails the run
    /// (an honest node must never come to it), and the message is signed all the same so
    /// that the run goes on to its end.
    fn sign<M: Clone, T>(
        &mut self,
        message: M,
        guarded: fn(&Ed25519Signer, M) -> Result<T, GuardError>,
        unguarded: fn(&Ed25519Signer, M) -> T,
    ) -> T {
        match guarded(&self.signer, message.clone()) {
            Ok(signed) => signed,
            Err(e) => {
                self.fail(e.to_string());
                unguarded(&self.signer, message)
            }
        }
    }

    fn fail(&mut self, what: String) {
        if self.error.is_none() && self.killed_after.is_none() {
            self.error = Some(what);
        }
    }

    /// Asks the host, as the engine's connector does; `None` when it gave no answer.
    fn ask<T>(
        &mut self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> AppMsg<Ctx>,
        wal: &mut Wal,
        out: &mut Vec<Out>,
    ) -> Option<T> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        if let Err(e) = blocking(self.host.handle(make(tx), &mut self.channels)) {
            self.fail(format!("host failed: {e}"));
        }
        self.publish_parts(wal, out);
        rx.try_recv().ok()
    }

    /// Tells the host something that needs no answer.
    fn tell(&mut self, msg: AppMsg<Ctx>, wal: &mut Wal, out: &mut Vec<Out>) {
        if let Err(e) = blocking(self.host.handle(msg, &mut self.channels)) {
            self.fail(format!("host failed: {e}"));
        }
        self.publish_parts(wal, out);
    }

    /// Sends what the host streamed (a proposal's parts).
    fn publish_parts(&mut self, _wal: &mut Wal, out: &mut Vec<Out>) {
        let mut parts = Vec::new();
        while let Ok(NetworkMsg::PublishProposalPart(part)) = self.parts.try_recv() {
            parts.push(part);
        }
        if parts.is_empty() || self.byzantine == Some(Byzantine::Silent) {
            return;
        }
        for part in parts {
            out.push(Out::Broadcast(Message::Part(part)));
        }
    }

    /// Starts consensus on this incarnation: the host says where (ConsensusReady).
    pub fn boot(&mut self, wal: &mut Wal, out: &mut Vec<Out>) {
        match self.ask(|reply| AppMsg::ConsensusReady { reply }, wal, out) {
            Some((height, params)) => self
                .local
                .push_back(Local::StartHeight(height, params, false)),
            None => self.fail("the host gave no starting height".into()),
        }
        self.drain(wal, out);
    }

    /// Mirrors the engine's `StartHeight`/`RestartHeight` handling.
    fn start_height(
        &mut self,
        height: Height,
        params: HeightParams<Ctx>,
        restart: bool,
        wal: &mut Wal,
        out: &mut Vec<Out>,
    ) {
        if self.consensus.is_none() {
            self.consensus = Some(State::new(
                self.ctx.clone(),
                height,
                params.validator_set.clone(),
                Params {
                    address: self.address,
                    threshold_params: self.thresholds,
                    value_payload: ValuePayload::ProposalAndParts,
                    enabled: true,
                },
                100,
                500,
            ));
        }
        self.is_validator = params.validator_set.get(&self.address).is_some();
        let entries = if restart || !self.is_validator {
            wal.reset(height.0);
            Vec::new()
        } else {
            wal.started(height.0)
        };
        self.timeouts = params.timeouts;
        if params.target_time.is_some() {
            // A target block time finalizes heights on the wall clock, which a simulation on
            // its own time cannot replay: refuse rather than run it nondeterministically.
            self.fail(
                "height parameters set a target time, which the simulation does not model".into(),
            );
            return;
        }
        if restart {
            self.sync.received.clear();
            self.sync.inflight = None;
        }
        self.process(
            Input::StartHeight(
                height,
                params.validator_set,
                restart,
                params.target_time,
                params.vote_extension_policy,
            ),
            wal,
            out,
        );
        if !entries.is_empty() {
            self.recovering = true;
            if let Some(state) = self.consensus.as_mut() {
                state.record_recovered_own_precommit_extensions(entries.iter());
                state.index_wal_entries(entries.iter());
            }
            for entry in entries {
                self.process(entry, wal, out);
            }
            if let Some(state) = self.consensus.as_mut() {
                state.reset_entries_index();
            }
            self.recovering = false;
        }
        self.sync.fed = None;
    }

    /// Feeds one input to consensus and handles every effect it yields.
    fn process(&mut self, input: Input<Ctx>, wal: &mut Wal, out: &mut Vec<Out>) {
        let Some(mut state) = self.consensus.take() else {
            return;
        };
        let metrics = std::mem::take(&mut self.metrics);
        let result: Result<(), ConsensusError<Ctx>> = malachitebft_core_consensus::process!(
            input: input,
            state: &mut state,
            metrics: &metrics,
            with: effect => self.handle_effect(effect, wal, out)
        );
        self.metrics = metrics;
        self.consensus = Some(state);
        if let Err(e) = result {
            self.fail(format!("consensus error: {e}"));
        }
    }

    fn timer(&mut self, timeout: Timeout, out: &mut Vec<Out>) {
        self.generation += 1;
        self.timers.insert(timeout, self.generation);
        out.push(Out::Timer {
            timeout,
            after: self.timeouts.duration_for(timeout).as_micros() as Time,
            generation: self.generation,
        });
    }

    fn publish(&mut self, message: Message, out: &mut Vec<Out>) {
        match &message {
            Message::Consensus(SignedConsensusMsg::Vote(v)) => {
                debug!(kind = ?v.typ, height = %v.height, round = %v.round, value = ?v.value, "votes")
            }
            Message::Consensus(SignedConsensusMsg::Proposal(p)) => {
                debug!(height = %p.height, round = %p.round, value = ?p.value, pol_round = %p.pol_round, "proposes")
            }
            _ => {}
        }
        match (self.byzantine, message) {
            (Some(Byzantine::Silent), _) => {}
            (Some(Byzantine::Equivocate), Message::Consensus(msg)) => {
                let twin = self.twin(&msg);
                out.push(Out::Split(Box::new((
                    Message::Consensus(msg),
                    Message::Consensus(twin),
                ))));
            }
            (Some(Byzantine::Garbage), message) => {
                out.push(Out::Broadcast(message));
                out.extend(self.garbage().into_iter().map(Out::Broadcast));
            }
            (_, message) => out.push(Out::Broadcast(message)),
        }
    }

    /// A conflicting message signed with the same key (equivocation).
    fn twin(&self, msg: &SignedConsensusMsg<Ctx>) -> SignedConsensusMsg<Ctx> {
        match msg {
            SignedConsensusMsg::Vote(v) => {
                let mut vote: Vote = v.message.clone();
                vote.value = match vote.value {
                    NilOrVal::Nil => NilOrVal::Val(BlockHash(B256::repeat_byte(0xee))),
                    NilOrVal::Val(_) => NilOrVal::Nil,
                };
                SignedConsensusMsg::Vote(self.signer.sign_vote_now(vote))
            }
            SignedConsensusMsg::Proposal(p) => {
                let mut proposal: Proposal = p.message.clone();
                proposal.value = BlockHash(alloy_primitives::keccak256(proposal.value.0));
                SignedConsensusMsg::Proposal(self.signer.sign_proposal_now(proposal))
            }
        }
    }

    /// What a garbage-sending validator adds to each of its messages: a vote whose signature
    /// its signer never made, and a proposal stream, properly signed, of bytes that are no
    /// block.
    fn garbage(&self) -> Vec<Message> {
        let height = Height(self.consensus_height());
        let round = self.consensus.as_ref().map_or(Round::new(0), |s| s.round());
        let vote = Vote::new(
            VoteType::Prevote,
            height,
            round,
            NilOrVal::Val(BlockHash(B256::repeat_byte(0x66))),
            self.address,
        );
        let forged = malachitebft_signing_ed25519::Signature::from_bytes([7u8; 64]);
        let noise = Bytes::from(
            alloy_primitives::keccak256(height.0.to_be_bytes())
                .repeat(8)
                .to_vec(),
        );
        let mut out = vec![Message::Consensus(SignedConsensusMsg::Vote(
            SignedMessage::new(vote, forged),
        ))];
        out.extend(
            stream_block(
                &self.signer,
                self.ctx.chain_id,
                height,
                round,
                Round::Nil,
                self.address,
                &noise,
            )
            .into_iter()
            .map(Message::Part),
        );
        out
    }

    /// Mirrors the engine's `handle_effect` (what each effect obliges the driver to do).
    fn handle_effect(
        &mut self,
        effect: Effect<Ctx>,
        wal: &mut Wal,
        out: &mut Vec<Out>,
    ) -> Result<Resume<Ctx>, String> {
        if self.killed_after.is_some() {
            return Err("the process was killed".into());
        }
        Ok(match effect {
            Effect::CancelAllTimeouts(r) => {
                self.timers.clear();
                r.resume_with(())
            }
            Effect::CancelTimeout(timeout, r) => {
                self.timers.remove(&timeout);
                r.resume_with(())
            }
            Effect::ScheduleTimeout(timeout, r) => {
                self.timer(timeout, out);
                r.resume_with(())
            }
            Effect::StartRound(height, round, proposer, role, r) => {
                self.flush(wal);
                let Some(values) = self.ask(
                    |reply_value| AppMsg::StartedRound {
                        height,
                        round,
                        proposer,
                        role,
                        reply_value,
                    },
                    wal,
                    out,
                ) else {
                    self.fail(format!(
                        "the host did not answer the start of round {round}"
                    ));
                    return Ok(r.resume_with(()));
                };
                for value in values {
                    if value.validity == Validity::Invalid {
                        out.push(Out::Refused {
                            proposer: value.proposer,
                            height: value.height.0,
                            synced: false,
                        });
                    }
                    self.local.push_back(Local::Input(Input::ProposedValue(
                        value,
                        ValueOrigin::Consensus,
                    )));
                }
                r.resume_with(())
            }
            Effect::SignProposal(proposal, r) => r.resume_with(self.sign(
                proposal,
                Ed25519Signer::sign_proposal_guarded,
                Ed25519Signer::sign_proposal_now,
            )),
            Effect::SignVote(vote, r) => r.resume_with(self.sign(
                vote,
                Ed25519Signer::sign_vote_guarded,
                Ed25519Signer::sign_vote_now,
            )),
            Effect::VerifySignature(msg, key, r) => {
                use malachitebft_core_consensus::ConsensusMsg;
                let valid = match &msg.message {
                    ConsensusMsg::Vote(v) => self.verifier.vote_is_valid(v, &msg.signature, &key),
                    ConsensusMsg::Proposal(p) => {
                        self.verifier.proposal_is_valid(p, &msg.signature, &key)
                    }
                };
                r.resume_with(valid)
            }
            Effect::VerifyCommitCertificate(cert, set, thresholds, r) => r.resume_with(blocking(
                self.verifier
                    .verify_commit_certificate(&self.ctx, &cert, &set, thresholds),
            )),
            Effect::VerifyExtendedCommitCertificate(cert, set, thresholds, policy, r) => r
                .resume_with(blocking(self.verifier.verify_extended_commit_certificate(
                    &self.ctx, &cert, &set, thresholds, policy,
                ))),
            Effect::VerifyPolkaCertificate(cert, set, thresholds, r) => r.resume_with(blocking(
                self.verifier
                    .verify_polka_certificate(&self.ctx, &cert, &set, thresholds),
            )),
            Effect::VerifyRoundCertificate(cert, set, thresholds, r) => r.resume_with(blocking(
                self.verifier
                    .verify_round_certificate(&self.ctx, &cert, &set, thresholds),
            )),
            // Trellis runs without vote extensions (policy Disabled): never asked for.
            Effect::ExtendVote(.., r) => r.resume_with(None),
            Effect::VerifyVoteExtension(.., r) => r.resume_with(Ok(())),
            Effect::PublishConsensusMsg(msg, r) => {
                self.flush(wal);
                self.publish(Message::Consensus(msg), out);
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(msg, r) => {
                self.publish(Message::Liveness(msg), out);
                r.resume_with(())
            }
            Effect::RepublishVote(vote, r) => {
                self.publish(Message::Liveness(LivenessMsg::Vote(vote)), out);
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(cert, r) => {
                self.publish(
                    Message::Liveness(LivenessMsg::SkipRoundCertificate(cert)),
                    out,
                );
                r.resume_with(())
            }
            Effect::GetValue(height, round, timeout, r) => {
                // A proposer waits (at most half its propose time) for transactions a block
                // can take, as `Chain::build_block` does in production.
                let wait = if self.chain.has_ready_transactions() {
                    MS
                } else {
                    (self.timeouts.duration_for(timeout).as_micros() as Time / 2).min(100 * MS)
                };
                out.push(Out::Later {
                    after: wait,
                    later: Later::GetValue {
                        height,
                        round,
                        timeout,
                    },
                });
                r.resume_with(())
            }
            Effect::RestreamProposal(height, round, valid_round, address, value_id, r) => {
                debug!(%height, %round, %valid_round, value = ?value_id, "re-streams a proposal");
                self.tell(
                    AppMsg::RestreamProposal {
                        height,
                        round,
                        valid_round,
                        address,
                        value_id,
                    },
                    wal,
                    out,
                );
                r.resume_with(())
            }
            Effect::Decide(certificate, extensions, r) => {
                self.flush(wal);
                if self.crash_at_decide {
                    self.killed_after = Some(out.len());
                    return Err("the process was killed after flushing its decision".into());
                }
                let height = certificate.height.0;
                debug!(height, round = %certificate.round, value = ?certificate.value_id, "decided");
                if self
                    .ask(
                        |reply| AppMsg::Decided {
                            certificate,
                            extensions,
                            reply,
                        },
                        wal,
                        out,
                    )
                    .is_some()
                {
                    out.push(Out::Committed(height));
                }
                r.resume_with(())
            }
            Effect::Finalize(certificate, extensions, evidence, r) => {
                match self.ask(
                    |reply| AppMsg::Finalized {
                        certificate,
                        extensions,
                        evidence,
                        reply,
                    },
                    wal,
                    out,
                ) {
                    Some(Next::Start(h, params)) => {
                        self.local.push_back(Local::StartHeight(h, params, false))
                    }
                    Some(Next::Restart(h, params)) => {
                        self.local.push_back(Local::StartHeight(h, params, true))
                    }
                    None => self.fail("the host did not say what comes after a height".into()),
                }
                r.resume_with(())
            }
            Effect::CertRejectedSyncValue(_peer, height, error, r) => {
                debug!(%height, ?error, "synced value refused");
                self.sync.discard(height.0);
                r.resume_with(())
            }
            Effect::CertVerifiedSyncValue(value, proposer, r) => {
                let (height, round) = (value.certificate.height, value.certificate.round);
                let outcome = self.ask(
                    |reply| AppMsg::ProcessSyncedValue {
                        height,
                        round,
                        proposer,
                        value_bytes: value.value_bytes.clone(),
                        reply,
                    },
                    wal,
                    out,
                );
                if let Some(SyncedValueOutcome::Verdict(mut proposed)) = outcome {
                    if proposed.validity == Validity::Invalid {
                        out.push(Out::Refused {
                            proposer: proposed.proposer,
                            height: height.0,
                            synced: true,
                        });
                    }
                    if proposed.value == value.certificate.value_id {
                        proposed.round = round;
                        self.local.push_back(Local::Input(Input::ProposedValue(
                            proposed,
                            ValueOrigin::Sync,
                        )));
                    } else {
                        self.sync.discard(height.0);
                    }
                } else {
                    self.sync.discard(height.0);
                }
                r.resume_with(())
            }
            Effect::WalAppend(height, entry, r) => {
                if !self.recovering && self.is_validator && height.0 == wal.sequence {
                    wal.pending.push(entry);
                }
                r.resume_with(())
            }
        })
    }

    fn flush(&mut self, wal: &mut Wal) {
        if !self.recovering && self.is_validator {
            wal.flush();
        }
    }

    /// Runs the inputs the node fed itself, then any synced value its height is waiting for.
    fn drain(&mut self, wal: &mut Wal, out: &mut Vec<Out>) {
        while self.killed_after.is_none() {
            if let Some(local) = self.local.pop_front() {
                match local {
                    Local::Input(input) => self.process(input, wal, out),
                    Local::StartHeight(h, params, restart) => {
                        self.start_height(h, params, restart, wal, out)
                    }
                }
                continue;
            }
            let height = self.consensus_height();
            self.sync.received.retain(|h, _| *h >= height);
            if self.sync.fed == Some(height) {
                return;
            }
            let Some((peer, value)) = self.sync.received.remove(&height) else {
                return;
            };
            self.sync.fed = Some(height);
            let response =
                ValueResponse::new(self.peers[peer], value.value_bytes, value.certificate);
            self.process(Input::SyncValueResponse(response), wal, out);
        }
    }

    /// A message from `from`.
    pub fn on_message(&mut self, from: usize, message: Message, wal: &mut Wal, out: &mut Vec<Out>) {
        match message {
            Message::Consensus(SignedConsensusMsg::Vote(v)) => {
                self.process(Input::Vote(v), wal, out)
            }
            Message::Consensus(SignedConsensusMsg::Proposal(p)) => {
                debug!(from, height = %p.height, round = %p.round, "proposal received");
                self.process(Input::Proposal(p), wal, out)
            }
            Message::Liveness(LivenessMsg::Vote(v)) => self.process(Input::Vote(v), wal, out),
            Message::Liveness(LivenessMsg::PolkaCertificate(c)) => {
                self.process(Input::PolkaCertificate(c), wal, out)
            }
            Message::Liveness(LivenessMsg::SkipRoundCertificate(c)) => {
                self.process(Input::RoundCertificate(c), wal, out)
            }
            Message::Part(part) => {
                let peer = self.peers[from];
                if let Some(value) = self
                    .ask(
                        |reply| AppMsg::ReceivedProposalPart {
                            from: peer,
                            published_by: Some(peer),
                            part,
                            reply,
                        },
                        wal,
                        out,
                    )
                    .flatten()
                {
                    debug!(from, height = %value.height, round = %value.round, value = ?value.value, validity = ?value.validity, "proposed value complete");
                    if value.validity == Validity::Invalid {
                        out.push(Out::Refused {
                            proposer: value.proposer,
                            height: value.height.0,
                            synced: false,
                        });
                    }
                    self.process(
                        Input::ProposedValue(value, ValueOrigin::Consensus),
                        wal,
                        out,
                    );
                }
            }
            Message::Status { tip } => self.sync.tips[from] = self.sync.tips[from].max(tip),
            Message::SyncRequest { start, end } => {
                let values = if self.byzantine == Some(Byzantine::Garbage) {
                    self.forged_values(start, end)
                } else {
                    self.ask(
                        |reply| AppMsg::GetDecidedValues {
                            range: Height(start)..=Height(end),
                            reply,
                        },
                        wal,
                        out,
                    )
                    .unwrap_or_default()
                };
                if self.byzantine != Some(Byzantine::Silent) {
                    out.push(Out::Send(from, Message::SyncResponse { values }));
                }
            }
            Message::SyncResponse { values } => {
                debug!(from, values = values.len(), "sync response");
                if self.sync.inflight.is_some_and(|(peer, _)| peer == from) {
                    self.sync.inflight = None;
                }
                for value in values {
                    self.sync.received.insert(value.height().0, (from, value));
                }
            }
            Message::Txs(raws) => {
                for raw in raws {
                    let _ = self.chain.admit_blocking(&raw, crate::recover_once);
                }
            }
        }
        self.drain(wal, out);
    }

    /// Decided values with certificates signed by nobody (a byzantine sync server).
    fn forged_values(&mut self, start: u64, end: u64) -> Vec<RawDecidedValue<Ctx>> {
        (start..=end.min(start + 2))
            .map(|h| {
                let cert = malachitebft_core_types::ExtendedCommitCertificate {
                    height: Height(h),
                    round: Round::new(0),
                    value_id: BlockHash(B256::repeat_byte(0x99)),
                    commit_signatures: Vec::new(),
                };
                RawDecidedValue::new(Bytes::from_static(b"not a block"), cert)
            })
            .collect()
    }

    /// A timer went off (ignored if cancelled or rescheduled since).
    pub fn on_timer(
        &mut self,
        timeout: Timeout,
        generation: u64,
        wal: &mut Wal,
        out: &mut Vec<Out>,
    ) {
        if self.timers.get(&timeout) != Some(&generation) {
            return;
        }
        self.timers.remove(&timeout);
        debug!(?timeout, "timeout");
        self.process(Input::TimeoutElapsed(timeout), wal, out);
        self.drain(wal, out);
    }

    pub fn on_later(&mut self, later: Later, wal: &mut Wal, out: &mut Vec<Out>) {
        match later {
            Later::GetValue {
                height,
                round,
                timeout,
            } => {
                let timeout = self.timeouts.duration_for(timeout);
                let value: Option<LocallyProposedValue<Ctx>> = self.ask(
                    |reply| AppMsg::GetValue {
                        height,
                        round,
                        timeout,
                        reply,
                    },
                    wal,
                    out,
                );
                if let Some(value) = value {
                    self.process(Input::Propose(value), wal, out);
                }
            }
        }
        self.drain(wal, out);
    }

    /// The sync actor's periodic step: say our tip, and ask a peer that is ahead for the
    /// heights we lack.
    pub fn sync_tick(&mut self, now: Time, rng: &mut StdRng, wal: &mut Wal, out: &mut Vec<Out>) {
        if self.byzantine != Some(Byzantine::Silent) {
            out.push(Out::Broadcast(Message::Status {
                tip: self.chain.height(),
            }));
        }
        if self
            .sync
            .inflight
            .is_some_and(|(_, sent)| now.saturating_sub(sent) > 2_000 * MS)
        {
            self.sync.inflight = None;
        }
        let height = self.consensus_height();
        if self.sync.inflight.is_none() && !self.sync.received.contains_key(&height) {
            let ahead: Vec<usize> = (0..self.sync.tips.len())
                .filter(|p| *p != self.index && self.sync.tips[*p] >= height && height > 0)
                .collect();
            if !ahead.is_empty() {
                let peer = ahead[rng.gen_range(0..ahead.len())];
                let end = self.sync.tips[peer].min(height + 4);
                self.sync.inflight = Some((peer, now));
                debug!(peer, start = height, end, "sync request");
                out.push(Out::Send(peer, Message::SyncRequest { start: height, end }));
            }
        }
        self.drain(wal, out);
    }
}
