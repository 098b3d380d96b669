//! Trellis patch: connection gating. A network may be given a filter (in its
//! `NetworkIdentity`) deciding which remote peers may hold a connection; connections from or
//! to any other peer are denied as soon as the handshake has proven the peer's key, before any
//! protocol (gossip, sync, discovery, validator proofs) runs on them, and established
//! connections of peers the filter stops allowing are closed within `RECHECK`. Malachite 0.8
//! checks peers only after the Identify exchange (`persistent_peers_only`); see
//! vendor/README.md in the Trellis repository.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Decides whether a remote peer may hold a connection.
pub type PeerFilter = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

#[derive(Debug)]
pub struct PeerNotAllowed(PeerId);

impl std::fmt::Display for PeerNotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer {} is not allowed on this network", self.0)
    }
}

impl std::error::Error for PeerNotAllowed {}

/// How often established connections are checked against the filter, so that a peer that
/// is no longer allowed (its node was removed) is disconnected, not just refused next time.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The behaviour that applies the filter.
pub struct PeerGate {
    filter: Option<PeerFilter>,
    connected: std::collections::HashSet<PeerId>,
    recheck: Option<tokio::time::Interval>,
}

impl PeerGate {
    pub fn new(filter: Option<PeerFilter>) -> Self {
        PeerGate {
            filter,
            connected: Default::default(),
            recheck: None,
        }
    }

    fn check(&self, peer: PeerId) -> Result<(), ConnectionDenied> {
        match &self.filter {
            Some(allowed) if !allowed(&peer) => {
                tracing::warn!(%peer, "refusing connection from a peer that is not registered");
                Err(ConnectionDenied::new(PeerNotAllowed(peer)))
            }
            _ => Ok(()),
        }
    }
}

impl NetworkBehaviour for PeerGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connected.insert(e.peer_id);
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                self.connected.remove(&e.peer_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let Some(allowed) = self.filter.clone() else {
            return Poll::Pending;
        };
        let recheck = self
            .recheck
            .get_or_insert_with(|| tokio::time::interval(RECHECK));
        // Polling until Pending keeps the waker registered for the next tick.
        while recheck.poll_tick(cx).is_ready() {
            if let Some(peer) = self.connected.iter().find(|p| !allowed(p)).copied() {
                self.connected.remove(&peer);
                tracing::warn!(%peer, "closing connections of a peer that is no longer registered");
                return Poll::Ready(ToSwarm::CloseConnection {
                    peer_id: peer,
                    connection: libp2p::swarm::CloseConnection::All,
                });
            }
        }
        Poll::Pending
    }
}

/// The libp2p identity of an Ed25519 public key (how nodes are registered).
pub fn peer_id_from_ed25519(public_key: &[u8; 32]) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(public_key).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}
