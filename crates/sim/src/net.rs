//! The simulated network: per-link latency and jitter, duplication, reordering (from
//! jitter), and faults that hold for a window of time — partitions, lossy periods, slow
//! nodes — all drawn from the scenario's seeded generator.
//!
//! Outside its fault windows the network delivers every message, late and out of order
//! perhaps, but once at least: the nodes talk over TCP (libp2p), which loses messages only
//! when a connection breaks — a fault with a start and an end. Loss that never ends would
//! make "liveness once the faults stop" meaningless.

use rand::rngs::StdRng;
use rand::Rng;

/// Microseconds of simulated time.
pub type Time = u64;

pub const MS: Time = 1_000;

/// A window of simulated time during which a fault holds.
#[derive(Clone, Debug)]
pub struct Window {
    pub from: Time,
    pub to: Time,
}

impl Window {
    pub fn holds(&self, now: Time) -> bool {
        (self.from..self.to).contains(&now)
    }
}

/// Faults of the network itself.
#[derive(Clone, Debug)]
pub enum LinkFault {
    /// Nodes of `side` and the others cannot reach each other.
    Partition { side: Vec<usize>, window: Window },
    /// Every message is lost with probability `loss`.
    Lossy { loss: f64, window: Window },
    /// Messages from or to `node` take `extra` longer.
    Slow {
        node: usize,
        extra: Time,
        window: Window,
    },
}

/// The network between `n` nodes.
#[derive(Clone, Debug)]
pub struct Network {
    /// Base one-way latency of each link (from, to).
    latency: Vec<Vec<Time>>,
    jitter: Time,
    /// Probability that a message arrives twice, at all times.
    duplicate: f64,
    pub faults: Vec<LinkFault>,
}

impl Network {
    /// A network whose links take `latency` (a range, µs) each, drawn from `rng`.
    pub fn new(
        n: usize,
        rng: &mut StdRng,
        latency: std::ops::Range<Time>,
        jitter: Time,
        duplicate: f64,
    ) -> Network {
        let latency = (0..n)
            .map(|_| (0..n).map(|_| rng.gen_range(latency.clone())).collect())
            .collect();
        Network {
            latency,
            jitter,
            duplicate,
            faults: Vec::new(),
        }
    }

    /// When a message sent now from `from` arrives at `to`: none (lost or cut), one or two
    /// delivery times.
    pub fn deliveries(&self, rng: &mut StdRng, now: Time, from: usize, to: usize) -> Vec<Time> {
        let mut loss = 0.0f64;
        let mut extra = 0;
        let mut cut = false;
        for fault in &self.faults {
            match fault {
                LinkFault::Partition { side, window }
                    if window.holds(now) && side.contains(&from) != side.contains(&to) =>
                {
                    cut = true;
                }
                LinkFault::Lossy { loss: l, window } if window.holds(now) => {
                    loss = loss.max(*l);
                }
                LinkFault::Slow {
                    node,
                    extra: e,
                    window,
                } if window.holds(now) && (*node == from || *node == to) => {
                    extra += e;
                }
                _ => {}
            }
        }
        // Draw every random number whatever happens, so that one fault does not shift the
        // draws of everything after it.
        let lost = rng.gen_bool(loss);
        let twice = rng.gen_bool(self.duplicate);
        let first = now + self.latency[from][to] + extra + rng.gen_range(0..=self.jitter);
        let second = first + rng.gen_range(0..=self.jitter.max(1) * 4);
        match (lost || cut, twice) {
            (true, _) => Vec::new(),
            (false, false) => vec![first],
            (false, true) => vec![first, second],
        }
    }

    /// When the last fault of the network ends.
    pub fn faults_end(&self) -> Time {
        self.faults
            .iter()
            .map(|f| match f {
                LinkFault::Partition { window, .. }
                | LinkFault::Lossy { window, .. }
                | LinkFault::Slow { window, .. } => window.to,
            })
            .max()
            .unwrap_or(0)
    }
}
