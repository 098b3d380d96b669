//! The application side of Malachite's channel interface: answers consensus requests by
//! building, streaming, assembling, checking and committing blocks through [`Application`].

use alloy_primitives::{Address, B256};
use bytes::{Bytes, BytesMut};
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::core::{Round, Validity};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use malachitebft_core_types::{ExtendedCommitCertificate, LinearTimeouts, VoteExtensions};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, error, info, warn, Instrument};

use crate::codec::{decode_certificate, encode_certificate};
use crate::context::{
    BlockHash, Height, ProposalPart, TrellisContext, ValidatorAddress, ValidatorSet,
};
use crate::signing::{proposal_digest, verify_digest, Ed25519Signer};

/// Size of one `Data` proposal part.
const CHUNK_BYTES: usize = 512 * 1024;
/// Partially received proposal streams kept at once; the oldest is dropped beyond this.
const MAX_OPEN_STREAMS: usize = 64;
/// Complete proposals for later heights kept at once.
const MAX_FUTURE_PROPOSALS: usize = 64;

/// Why a received block was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot decode block: {0}")]
    Undecodable(String),
    #[error("block {hash} is invalid: {reason}")]
    Invalid { hash: B256, reason: String },
    /// This node cannot check it now (its storage failed, a worker is gone): nobody's fault.
    #[error("cannot check the block now: {0}")]
    Unavailable(String),
}

/// What the chain must provide to consensus. Implemented by the node.
#[async_trait::async_trait]
pub trait Application: Send + Sync + 'static {
    /// Why building or committing failed on this node: the engine logs it (a failed commit
    /// restarts the height; a failed build ends the consensus task, as the node cannot go on).
    type Error: std::error::Error + Send + Sync + 'static;
    /// Height of the last committed block (0 when only genesis exists).
    fn committed_height(&self) -> u64;
    /// The validator set that decides `height`, if known.
    fn validator_set(&self, height: u64) -> Option<ValidatorSet>;
    /// Builds and executes a block at `committed_height() + 1` for this node to propose in
    /// `round`; returns its hash and encoding. The block is on disk, durably, before this
    /// returns (see [`Application::built_block`]).
    async fn build_block(
        &self,
        height: u64,
        round: u32,
        proposer: Address,
        deadline: Instant,
    ) -> Result<(B256, Bytes), Self::Error>;
    /// The block this node built to propose in `round` of `height`, if it built one: after a
    /// restart, consensus may ask for that round's value again, and proposing a second block
    /// in one round would be an equivocation.
    async fn built_block(&self, height: u64, round: u32) -> Option<(B256, Bytes)>;
    /// Decodes, checks and executes a block at `committed_height() + 1` received from a peer.
    /// The block may have been built by the proposer of an earlier round (Tendermint
    /// re-proposes locked values), so its header names its builder, not this round's proposer.
    async fn verify_block(&self, height: u64, block: Bytes) -> Result<B256, VerifyError>;
    /// Commits a block that was built or verified earlier, together with its certificate.
    async fn commit_block(
        &self,
        height: u64,
        hash: B256,
        certificate: Vec<u8>,
    ) -> Result<(), Self::Error>;
    /// The encoded block and certificate decided at `height`, for peers that sync.
    fn decided_block(&self, height: u64) -> Option<(Bytes, Vec<u8>)>;
    /// A block of `height` this node built or verified and kept on disk (kept until its
    /// height commits), so that a restarted node can re-propose a locked or valid value that
    /// its consensus log remembers but its memory lost.
    async fn kept_block(&self, height: u64, hash: B256) -> Option<Bytes>;
}

struct PartialStream {
    parts: BTreeMap<u64, ProposalPart>,
    fin_sequence: Option<u64>,
    bytes: usize,
}

struct Assembled {
    height: Height,
    round: Round,
    pol_round: Round,
    proposer: ValidatorAddress,
    block: Bytes,
    signature: malachitebft_signing_ed25519::Signature,
}

/// Splits a block into a signed proposal stream.
pub fn stream_block(
    signer: &Ed25519Signer,
    chain_id: u64,
    height: Height,
    round: Round,
    pol_round: Round,
    proposer: ValidatorAddress,
    block: &Bytes,
) -> Vec<StreamMessage<ProposalPart>> {
    let mut id = Vec::with_capacity(24);
    id.extend_from_slice(&height.0.to_be_bytes());
    id.extend_from_slice(&round.as_i64().to_be_bytes());
    id.extend_from_slice(&pol_round.as_i64().to_be_bytes());
    let stream_id = StreamId::new(Bytes::from(id));
    let mut parts = vec![ProposalPart::Init {
        height,
        round,
        pol_round,
        proposer,
    }];
    let mut offset = 0;
    while offset < block.len() {
        let end = (offset + CHUNK_BYTES).min(block.len());
        parts.push(ProposalPart::Data(block.slice(offset..end)));
        offset = end;
    }
    let digest = proposal_digest(chain_id, height, round, &proposer, block);
    parts.push(ProposalPart::Fin(signer.sign_digest(&digest)));
    let mut messages: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| StreamMessage {
            stream_id: stream_id.clone(),
            sequence: i as u64,
            content: StreamContent::Data(part),
        })
        .collect();
    messages.push(StreamMessage {
        stream_id,
        sequence: messages.len() as u64,
        content: StreamContent::Fin,
    });
    messages
}

/// The consensus-facing state of one node.
pub struct AppLoop<A: Application> {
    chain_id: u64,
    address: ValidatorAddress,
    signer: Ed25519Signer,
    timeouts: LinearTimeouts,
    app: Arc<A>,
    /// What consensus does after the height just decided: set when the decision is
    /// committed (or failed to be), answered when consensus asks (`Finalized`).
    next: Option<Next<TrellisContext>>,
    streams: HashMap<(PeerId, Bytes), PartialStream>,
    stream_order: VecDeque<(PeerId, Bytes)>,
    /// Values built or accepted, per (height, round), replayed to consensus after restarts.
    undecided: HashMap<(u64, u32), Vec<ProposedValue<TrellisContext>>>,
    /// Value this node built per (height, round): it must re-propose the very same one.
    built: HashMap<(u64, u32), B256>,
    /// Encoded blocks by hash, for re-streaming; pruned once a height is decided.
    blocks: HashMap<B256, (u64, Bytes)>,
    /// Complete proposals for heights above the next one, checked when their height starts.
    future: Vec<Assembled>,
    /// The height and round consensus last started, for the logs' `round` span.
    position: (u64, Option<u32>),
}

impl<A: Application> AppLoop<A> {
    pub fn new(
        chain_id: u64,
        address: ValidatorAddress,
        signer: Ed25519Signer,
        timeouts: LinearTimeouts,
        app: Arc<A>,
    ) -> Self {
        AppLoop {
            chain_id,
            address,
            signer,
            timeouts,
            app,
            next: None,
            streams: HashMap::new(),
            stream_order: VecDeque::new(),
            undecided: HashMap::new(),
            built: HashMap::new(),
            blocks: HashMap::new(),
            future: Vec::new(),
            position: (0, None),
        }
    }

    fn validator_set(&self, height: Height) -> eyre::Result<ValidatorSet> {
        self.app
            .validator_set(height.0)
            .ok_or_else(|| eyre::eyre!("no validator set known for height {height}"))
    }

    /// What consensus needs to run `height`: its validator set and the timeouts.
    fn height_params(&self, height: Height) -> eyre::Result<HeightParams<TrellisContext>> {
        Ok(HeightParams::new(
            self.validator_set(height)?,
            self.timeouts,
            None,
        ))
    }

    fn round_key(height: Height, round: Round) -> (u64, u32) {
        (height.0, round.as_u32().unwrap_or(u32::MAX))
    }

    /// Runs until consensus stops.
    pub async fn run(mut self, mut channels: Channels<TrellisContext>) -> eyre::Result<()> {
        while let Some(msg) = channels.consensus.recv().await {
            if let AppMsg::StartedRound { height, round, .. } = &msg {
                self.position = (height.0, round.as_u32());
            }
            // Every log line of the request carries the height and round consensus is at.
            let span =
                tracing::info_span!("round", height = self.position.0, round = self.position.1);
            if let Err(e) = self
                .handle(msg, &mut channels)
                .instrument(span.clone())
                .await
            {
                span.in_scope(|| error!(error = %e, "consensus request failed"));
            }
        }
        Err(eyre::eyre!("consensus channel closed"))
    }

    /// Answers one request of consensus (the engine's channel, or the simulation harness).
    pub async fn handle(
        &mut self,
        msg: AppMsg<TrellisContext>,
        channels: &mut Channels<TrellisContext>,
    ) -> eyre::Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let start = Height(self.app.committed_height() + 1);
                info!(height = %start, "consensus ready");
                let _ = reply.send((start, self.height_params(start)?));
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                self.check_future(height).await;
                let values = self
                    .undecided
                    .get(&Self::round_key(height, round))
                    .cloned()
                    .unwrap_or_default();
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                let key = Self::round_key(height, round);
                let hash = match self.built.get(&key) {
                    Some(hash) => *hash,
                    None if height.0 <= self.app.committed_height() => {
                        // Decided (by votes or sync) while consensus was asking: nothing to
                        // propose, and nothing wrong.
                        debug!(%height, %round, "height already committed; no value to propose");
                        return Ok(());
                    }
                    None => {
                        let (hash, bytes) = match self.app.built_block(height.0, key.1).await {
                            Some(built) => {
                                info!(%height, %round, block = %built.0, "proposes again the block it built for this round before it restarted");
                                built
                            }
                            None => {
                                // Leave headroom for streaming before the propose timeout fires.
                                let deadline = Instant::now() + timeout.mul_f32(0.5);
                                self.app
                                    .build_block(height.0, key.1, self.address.0, deadline)
                                    .await?
                            }
                        };
                        self.built.insert(key, hash);
                        self.blocks.insert(hash, (height.0, bytes));
                        self.undecided.entry(key).or_default().push(ProposedValue {
                            height,
                            round,
                            valid_round: Round::Nil,
                            proposer: self.address,
                            value: BlockHash(hash),
                            validity: Validity::Valid,
                        });
                        hash
                    }
                };
                let _ = reply.send(LocallyProposedValue::new(height, round, BlockHash(hash)));
                self.publish(channels, height, round, Round::Nil, hash)
                    .await?;
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                reply, extensions, ..
            } => {
                // Trellis does not use vote extensions; refuse any that show up.
                let verdicts = extensions
                    .into_iter()
                    .map(|(address, extension)| {
                        let verdict = if extension.is_empty() {
                            Ok(())
                        } else {
                            Err(malachitebft_app_channel::app::consensus::VoteExtensionError::InvalidVoteExtension)
                        };
                        (address, verdict)
                    })
                    .collect();
                let _ = reply.send(verdicts);
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                value_id,
                ..
            } => {
                self.publish(channels, height, round, valid_round, value_id.0)
                    .await?;
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                // Parts of one stream may reach us through different neighbours: group them by
                // who published them (authenticated by the network), not by who relayed them.
                let value = match self.receive_part(published_by.unwrap_or(from), part) {
                    Some(assembled) => self.accept(assembled).await,
                    None => None,
                };
                let _ = reply.send(value);
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                // Committed (durably) before the acknowledgement: only then does sync offer
                // the height to peers. A failed commit is not acknowledged; consensus restarts
                // the height when it asks what comes next.
                let height = certificate.height;
                let hash = certificate.value_id.0;
                debug!(%height, round = %certificate.round, block = %hash, "decided");
                match self
                    .app
                    .commit_block(height.0, hash, encode_certificate(&certificate))
                    .await
                {
                    Ok(()) => {
                        self.prune(height);
                        let next_height = Height(height.0 + 1);
                        self.next =
                            Some(Next::Start(next_height, self.height_params(next_height)?));
                        let _ = reply.send(());
                    }
                    Err(e) => {
                        error!(%height, error = %e, "commit failed; restarting height");
                        self.next = Some(Next::Restart(height, self.height_params(height)?));
                    }
                }
            }
            AppMsg::Finalized {
                certificate, reply, ..
            } => {
                let next = match self.next.take() {
                    Some(next) => next,
                    None => {
                        error!(height = %certificate.height, "finalized a height that was never decided here; restarting it");
                        Next::Restart(certificate.height, self.height_params(certificate.height)?)
                    }
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                // Consecutive from the start of the range; the first height this node lacks
                // ends the answer.
                let mut values = Vec::new();
                for height in range.start().0..=range.end().0 {
                    let Some((block, cert)) = self.app.decided_block(height) else {
                        break;
                    };
                    match decode_certificate(&cert) {
                        Ok(certificate) => values.push(RawDecidedValue::new(
                            block,
                            ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                                certificate,
                                VoteExtensions::default(),
                            ),
                        )),
                        Err(e) => {
                            error!(height, error = %e, "stored certificate is unreadable");
                            break;
                        }
                    }
                }
                let _ = reply.send(values);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let value = match self.app.verify_block(height.0, value_bytes.clone()).await {
                    Ok(hash) => {
                        self.blocks.insert(hash, (height.0, value_bytes));
                        Ok((hash, Validity::Valid))
                    }
                    Err(VerifyError::Invalid { hash, reason }) => {
                        warn!(%height, %reason, "synced block is invalid");
                        Ok((hash, Validity::Invalid))
                    }
                    Err(e @ VerifyError::Undecodable(_)) => {
                        warn!(%height, error = %e, "synced value rejected");
                        Err(SyncedValueOutcome::PeerFault)
                    }
                    Err(e @ VerifyError::Unavailable(_)) => {
                        warn!(%height, error = %e, "cannot check a synced value now");
                        Err(SyncedValueOutcome::LocalTransientError)
                    }
                };
                let _ = reply.send(match value {
                    Ok((hash, validity)) => SyncedValueOutcome::Verdict(ProposedValue {
                        height,
                        round,
                        valid_round: Round::Nil,
                        proposer,
                        value: BlockHash(hash),
                        validity,
                    }),
                    Err(outcome) => outcome,
                });
            }
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        channels: &mut Channels<TrellisContext>,
        height: Height,
        round: Round,
        pol_round: Round,
        hash: B256,
    ) -> eyre::Result<()> {
        if !self.blocks.contains_key(&hash) {
            // Restarted since: the consensus log kept the value, the disk kept the block.
            match self.app.kept_block(height.0, hash).await {
                Some(bytes) => {
                    debug!(%height, %round, block = %hash, "re-streams a block kept on disk");
                    self.blocks.insert(hash, (height.0, bytes));
                }
                None => {
                    warn!(%height, %round, block = %hash, "asked to stream a block this node does not have");
                    return Ok(());
                }
            }
        }
        let Some((_, block)) = self.blocks.get(&hash) else {
            return Ok(());
        };
        for msg in stream_block(
            &self.signer,
            self.chain_id,
            height,
            round,
            pol_round,
            self.address,
            block,
        ) {
            channels
                .network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await?;
        }
        Ok(())
    }

    fn receive_part(
        &mut self,
        from: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Option<Assembled> {
        let key = (from, msg.stream_id.to_bytes());
        if !self.streams.contains_key(&key) {
            if self.streams.len() >= MAX_OPEN_STREAMS {
                if let Some(oldest) = self.stream_order.pop_front() {
                    self.streams.remove(&oldest);
                }
            }
            self.stream_order.push_back(key.clone());
            self.streams.insert(
                key.clone(),
                PartialStream {
                    parts: BTreeMap::new(),
                    fin_sequence: None,
                    bytes: 0,
                },
            );
        }
        let stream = self.streams.get_mut(&key)?;
        match msg.content {
            StreamContent::Fin => stream.fin_sequence = Some(msg.sequence),
            StreamContent::Data(part) => {
                if let ProposalPart::Data(d) = &part {
                    stream.bytes += d.len();
                }
                stream.parts.insert(msg.sequence, part);
            }
        }
        if stream.bytes > trellis_primitives::MAX_BLOCK_BYTES {
            warn!(peer = %from, "proposal stream exceeds the block size limit; dropped");
            self.streams.remove(&key);
            return None;
        }
        let fin = stream.fin_sequence?;
        if stream.parts.len() as u64 != fin {
            return None;
        }
        let stream = self.streams.remove(&key)?;
        self.stream_order.retain(|k| k != &key);
        assemble(stream.parts.into_values())
    }

    /// Checks a complete proposal; returns the value for consensus if it is for the next height.
    async fn accept(&mut self, p: Assembled) -> Option<ProposedValue<TrellisContext>> {
        let next = self.app.committed_height() + 1;
        if p.height.0 < next {
            return None;
        }
        let set = self.app.validator_set(p.height.0)?;
        if !stream_signature_valid(
            self.chain_id,
            &set,
            p.height,
            p.round,
            &p.proposer,
            &p.block,
            &p.signature,
        ) {
            warn!(height = %p.height, proposer = %p.proposer, "proposal stream with a bad or foreign signature; dropped");
            return None;
        }
        if p.height.0 > next {
            if self.future.len() >= MAX_FUTURE_PROPOSALS {
                self.future.remove(0);
            }
            self.future.push(p);
            return None;
        }
        self.check(p).await
    }

    async fn check(&mut self, p: Assembled) -> Option<ProposedValue<TrellisContext>> {
        let validity = match self.app.verify_block(p.height.0, p.block.clone()).await {
            Ok(hash) => {
                self.blocks.insert(hash, (p.height.0, p.block));
                (hash, Validity::Valid)
            }
            Err(VerifyError::Invalid { hash, reason }) => {
                warn!(height = %p.height, %reason, "proposed block is invalid");
                (hash, Validity::Invalid)
            }
            Err(e) => {
                warn!(height = %p.height, error = %e, "proposal not checked");
                return None;
            }
        };
        let value = ProposedValue {
            height: p.height,
            round: p.round,
            valid_round: p.pol_round,
            proposer: p.proposer,
            value: BlockHash(validity.0),
            validity: validity.1,
        };
        self.undecided
            .entry(Self::round_key(p.height, p.round))
            .or_default()
            .push(value.clone());
        Some(value)
    }

    async fn check_future(&mut self, height: Height) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
            .into_iter()
            .partition(|p| p.height == height);
        self.future = later.into_iter().filter(|p| p.height > height).collect();
        for p in now {
            self.check(p).await;
        }
    }

    fn prune(&mut self, decided: Height) {
        self.undecided.retain(|(h, _), _| *h > decided.0);
        self.built.retain(|(h, _), _| *h > decided.0);
        self.blocks.retain(|_, (h, _)| *h > decided.0);
    }
}

/// Reassembles a complete stream: `Init`, then `Data` chunks, then `Fin`.
fn assemble(parts: impl Iterator<Item = ProposalPart>) -> Option<Assembled> {
    let mut parts = parts.peekable();
    let ProposalPart::Init {
        height,
        round,
        pol_round,
        proposer,
    } = parts.next()?
    else {
        return None;
    };
    let mut block = BytesMut::new();
    let mut signature = None;
    for part in parts {
        match part {
            ProposalPart::Data(d) if signature.is_none() => block.extend_from_slice(&d),
            ProposalPart::Fin(s) if signature.is_none() => signature = Some(s),
            _ => return None,
        }
    }
    Some(Assembled {
        height,
        round,
        pol_round,
        proposer,
        block: block.freeze(),
        signature: signature?,
    })
}

/// Verifies the proposer's stream signature.
pub fn stream_signature_valid(
    chain_id: u64,
    set: &ValidatorSet,
    height: Height,
    round: Round,
    proposer: &ValidatorAddress,
    block: &[u8],
    signature: &malachitebft_signing_ed25519::Signature,
) -> bool {
    set.get(proposer).is_some_and(|v| {
        verify_digest(
            &v.public_key,
            &proposal_digest(chain_id, height, round, proposer, block),
            signature,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A chain at a fixed height that counts the blocks it is asked to build.
    struct AtHeight {
        height: u64,
        builds: AtomicUsize,
        /// A block kept on disk, as a restarted node has it.
        kept: Option<(B256, Bytes)>,
        /// A block this node built for (round, hash) before it restarted.
        built: Option<(u32, B256, Bytes)>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("asked to build block {height} on tip {tip}")]
    struct NotOnTip {
        height: u64,
        tip: u64,
    }

    #[async_trait::async_trait]
    impl Application for AtHeight {
        type Error = NotOnTip;

        fn committed_height(&self) -> u64 {
            self.height
        }

        fn validator_set(&self, _height: u64) -> Option<ValidatorSet> {
            None
        }

        async fn build_block(
            &self,
            height: u64,
            _round: u32,
            _proposer: Address,
            _deadline: Instant,
        ) -> Result<(B256, Bytes), NotOnTip> {
            self.builds.fetch_add(1, Ordering::Relaxed);
            Err(NotOnTip {
                height,
                tip: self.height,
            })
        }

        async fn built_block(&self, _height: u64, round: u32) -> Option<(B256, Bytes)> {
            self.built
                .as_ref()
                .filter(|(r, _, _)| *r == round)
                .map(|(_, h, b)| (*h, b.clone()))
        }

        async fn verify_block(&self, _height: u64, _block: Bytes) -> Result<B256, VerifyError> {
            Err(VerifyError::Unavailable("not used".into()))
        }

        async fn commit_block(&self, _: u64, _: B256, _: Vec<u8>) -> Result<(), NotOnTip> {
            Ok(())
        }

        fn decided_block(&self, _height: u64) -> Option<(Bytes, Vec<u8>)> {
            None
        }

        async fn kept_block(&self, _height: u64, hash: B256) -> Option<Bytes> {
            self.kept
                .as_ref()
                .filter(|(h, _)| *h == hash)
                .map(|(_, b)| b.clone())
        }
    }

    type Published = tokio::sync::mpsc::Receiver<NetworkMsg<TrellisContext>>;

    /// A host of node key 7 over `app`: the channels it answers on, what it publishes, and
    /// its validator address.
    fn host_over(
        app: Arc<AtHeight>,
    ) -> (
        AppLoop<AtHeight>,
        Channels<TrellisContext>,
        Published,
        ValidatorAddress,
    ) {
        let key = trellis_crypto::NodeKey::from_secret([7; 32]);
        let signer = Ed25519Signer::new(key.private().clone(), 1);
        let address = ValidatorAddress::from_public_key(&key.public());
        let host = AppLoop::new(1, address, signer, LinearTimeouts::default(), app);
        let (network, published) = tokio::sync::mpsc::channel(64);
        let channels = Channels {
            consensus: tokio::sync::mpsc::channel(1).1,
            network,
            events: Default::default(),
            requests: tokio::sync::mpsc::channel(1).0,
            net_requests: tokio::sync::mpsc::channel(1).0,
        };
        (host, channels, published, address)
    }

    /// Found by the deterministic simulation: consensus may ask for a value of a height this
    /// node committed meanwhile (through sync, or votes that arrived while it waited for
    /// transactions). That is no error: no block is built and nothing is proposed.
    #[tokio::test]
    async fn a_value_asked_for_an_already_committed_height_is_no_error() {
        let app = Arc::new(AtHeight {
            height: 5,
            builds: AtomicUsize::new(0),
            kept: None,
            built: None,
        });
        let (mut host, mut channels, mut published, _) = host_over(app.clone());
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        host.handle(
            AppMsg::GetValue {
                height: Height(5),
                round: Round::new(0),
                timeout: std::time::Duration::from_secs(1),
                reply,
            },
            &mut channels,
        )
        .await
        .expect("no error");
        assert_eq!(app.builds.load(Ordering::Relaxed), 0);
        assert!(answer.try_recv().is_err(), "nothing is proposed");
        assert!(published.try_recv().is_err(), "nothing is streamed");
    }

    /// Found by the real-process crash storm (seed 7712): every validator had been killed and
    /// restarted while height 31 had a valid value; each proposer's consensus log asked it to
    /// re-propose that value, but the block lived only in the memory of the process that died,
    /// so no proposal came, round after round, for good. A restarted host re-streams the block
    /// the chain kept on disk.
    #[tokio::test]
    async fn a_restarted_proposer_re_streams_a_locked_block_from_disk() {
        let block = Bytes::from_static(b"an encoded block kept on disk");
        let hash = B256::repeat_byte(0xe3);
        let app = Arc::new(AtHeight {
            height: 30,
            builds: AtomicUsize::new(0),
            kept: Some((hash, block)),
            built: None,
        });
        let (mut host, mut channels, mut published, address) = host_over(app.clone());
        host.handle(
            AppMsg::RestreamProposal {
                height: Height(31),
                round: Round::new(4),
                valid_round: Round::new(1),
                address,
                value_id: BlockHash(hash),
            },
            &mut channels,
        )
        .await
        .expect("no error");
        assert_eq!(app.builds.load(Ordering::Relaxed), 0, "nothing is rebuilt");
        assert!(
            published.try_recv().is_ok(),
            "the kept block is streamed again"
        );
    }

    /// A restarted proposer asked for the value of a round it proposed in before the restart
    /// proposes the block it built then (kept on disk), not a second one: two blocks in one
    /// round is an equivocation, which peers report and which splits their votes.
    #[tokio::test]
    async fn a_restarted_proposer_proposes_the_block_it_built_for_the_round() {
        let block = Bytes::from_static(b"the block built for round 2 before the restart");
        let hash = B256::repeat_byte(0xb2);
        let app = Arc::new(AtHeight {
            height: 30,
            builds: AtomicUsize::new(0),
            kept: None,
            built: Some((2, hash, block)),
        });
        let (mut host, mut channels, mut published, _) = host_over(app.clone());
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        host.handle(
            AppMsg::GetValue {
                height: Height(31),
                round: Round::new(2),
                timeout: std::time::Duration::from_secs(1),
                reply,
            },
            &mut channels,
        )
        .await
        .expect("no error");
        assert_eq!(app.builds.load(Ordering::Relaxed), 0, "nothing is rebuilt");
        let proposed = answer.try_recv().expect("a value is proposed");
        assert_eq!(proposed.value, BlockHash(hash), "the block built before");
        assert!(published.try_recv().is_ok(), "and streamed");

        // Another round of the same height is a new block.
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let _ = host
            .handle(
                AppMsg::GetValue {
                    height: Height(31),
                    round: Round::new(3),
                    timeout: std::time::Duration::from_millis(1),
                    reply,
                },
                &mut channels,
            )
            .await;
        assert_eq!(app.builds.load(Ordering::Relaxed), 1, "round 3 is built");
    }
}
