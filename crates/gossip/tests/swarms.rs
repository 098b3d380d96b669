//! Real swarms on loopback ports chosen at runtime: a batch crosses a relay, a peer whose key
//! is not registered is never heard, and a batch seen before is not delivered again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use trellis_gossip::{Gossip, GossipConfig, GossipStats, PeerFilter};

/// Give up waiting for the network after this long (a failure, never a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

fn registered(keys: &[&Keypair]) -> PeerFilter {
    let ids: HashSet<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
    Arc::new(move |peer| ids.contains(peer))
}

async fn node(key: &Keypair, peers: Vec<Multiaddr>, filter: PeerFilter) -> Gossip {
    let config = GossipConfig {
        chain_id: 7_357,
        listen: "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"),
        peers,
    };
    trellis_gossip::start(key.clone(), config, filter)
        .await
        .expect("gossip starts")
}

/// Sends `marker`-tagged transactions from `from` until `to` receives one; returns every
/// transaction `to` received meanwhile.
async fn send_until_received(from: &Gossip, to: &mut Gossip, marker: u8) -> Vec<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut n: u32 = 0;
    let mut received = Vec::new();
    loop {
        n += 1;
        let mut raw = vec![marker; 8];
        raw.extend(n.to_be_bytes());
        from.sender.send(raw);
        match tokio::time::timeout(Duration::from_millis(200), to.inbound.recv()).await {
            Ok(Some(batch)) => {
                let done = batch.iter().any(|t| t.first() == Some(&marker));
                received.extend(batch);
                if done {
                    return received;
                }
            }
            Err(_) => {}
            Ok(None) => panic!("the receiving gossip stopped"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing from the sender arrived within {PATIENCE:?}"
        );
    }
}

/// Everything `node` has received and not yet taken.
fn drain(node: &mut Gossip) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    while let Ok(batch) = node.inbound.try_recv() {
        all.extend(batch);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_crosses_a_relay_and_an_unregistered_peer_is_never_heard() {
    let (a, b, c, outsider) = (
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
    );
    let filter = registered(&[&a, &b, &c]);
    // A line: A and C know only B, which knows nobody and must relay.
    let mut relay = node(&b, vec![], filter.clone()).await;
    let hub = vec![relay.listen_addr.clone()];
    let first = node(&a, hub.clone(), filter.clone()).await;
    let mut last = node(&c, hub.clone(), filter.clone()).await;
    // The outsider would accept anyone; B and C refuse it.
    let stranger = node(&outsider, hub.clone(), Arc::new(|_| true)).await;

    let got = send_until_received(&first, &mut last, 0xa1).await;
    assert!(got.iter().all(|t| t[0] == 0xa1), "{got:?}");
    assert!(
        drain(&mut relay).iter().any(|t| t[0] == 0xa1),
        "the relay admits what it forwards"
    );

    // The outsider sends for a while; nothing of it reaches a registered node, while A's
    // transactions sent in the same time still do.
    for i in 0u8..20 {
        stranger.sender.send(vec![0xee, i]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = send_until_received(&first, &mut last, 0xa2).await;
    let heard: Vec<_> = got
        .into_iter()
        .chain(drain(&mut relay))
        .chain(drain(&mut last))
        .collect();
    assert!(
        heard.iter().all(|t| t[0] != 0xee),
        "an unregistered peer's transactions were accepted"
    );
    assert_eq!(
        GossipStats::get(&stranger.stats.txs_sent),
        0,
        "the outsider found no registered peer to send to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_seen_before_is_not_delivered_again() {
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let filter = registered(&[&a, &b]);
    let mut receiver = node(&b, vec![], filter.clone()).await;
    let sender = node(&a, vec![receiver.listen_addr.clone()], filter).await;
    send_until_received(&sender, &mut receiver, 0xb1).await;
    drain(&mut receiver);

    // A transaction alone, then alone again once the first is delivered: the same
    // message, which gossipsub does not send twice (a transaction sent again inside another
    // batch is a new message; the node's pool drops it before any signature work).
    let same = vec![0xb2; 40];
    sender.sender.send(same.clone());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !drain(&mut receiver).contains(&same) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first copy never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = GossipStats::get(&sender.stats.batches_sent);
    tokio::time::sleep(Duration::from_millis(50)).await;
    sender.sender.send(same.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        GossipStats::get(&sender.stats.batches_sent),
        sent,
        "the repeated batch was published again"
    );
    let got = send_until_received(&sender, &mut receiver, 0xb3).await;
    let again = got.iter().filter(|t| **t == same).count();
    assert_eq!(again, 0, "a batch seen before was delivered again");
}
