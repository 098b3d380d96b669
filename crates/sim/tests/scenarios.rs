//! Seeded fault scenarios over the deterministic simulation (see `trellis_sim`).
//!
//! `TRELLIS_SIM_SEEDS=N` runs seeds 1..=N, `A-B` seeds A..=B (default 100, the CI subset;
//! `scripts/soak --sim` runs thousands); `TRELLIS_SIM_SEED=S` replays one seed, printing its scenario and what every
//! node did (`RUST_LOG` filters, default `trellis_sim=debug`).

use malachitebft_core_types::{ThresholdParam, ThresholdParams};
use rayon::prelude::*;
use trellis_sim::{run, Report, Scenario, MAX_BLOCK_TXS, SEC};

/// Transfers a second the clients offer in every faulty scenario.
const LOAD: u32 = 120;

fn seeds() -> Vec<u64> {
    if let Some(seed) = replayed_seed() {
        return vec![seed];
    }
    // `N` (seeds 1..=N) or `A-B` (seeds A..=B).
    let spec = std::env::var("TRELLIS_SIM_SEEDS").unwrap_or_else(|_| "100".into());
    let range = match spec.split_once('-') {
        Some((a, b)) => a.trim().parse().ok().zip(b.trim().parse().ok()),
        None => spec.trim().parse().ok().map(|n| (1, n)),
    };
    let (first, last): (u64, u64) =
        range.unwrap_or_else(|| panic!("TRELLIS_SIM_SEEDS={spec}: expected N or A-B"));
    (first..=last).collect()
}

fn replayed_seed() -> Option<u64> {
    std::env::var("TRELLIS_SIM_SEED").ok()?.parse().ok()
}

fn throughput(report: &Report) -> f64 {
    report.acknowledged as f64 / (report.duration as f64 / SEC as f64)
}

#[test]
fn seeded_fault_scenarios_keep_every_invariant() {
    if let Some(seed) = replayed_seed() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("trellis_sim=debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .without_time()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
        eprintln!("{:#?}", Scenario::generate(seed, LOAD));
    }
    let seeds = seeds();
    let started = std::time::Instant::now();
    let results: Vec<_> = seeds
        .par_iter()
        .map(|seed| run(&Scenario::generate(*seed, LOAD)))
        .collect();
    let mut failures = Vec::new();
    let (mut acknowledged, mut offered, mut events) = (0, 0, 0);
    for result in &results {
        match result {
            Ok(report) => {
                acknowledged += report.acknowledged;
                offered += report.offered;
                events += report.events;
                if seeds.len() == 1 {
                    eprintln!("{report:?}");
                }
            }
            Err(failure) => failures.push(failure.to_string()),
        }
    }
    eprintln!(
        "{} seeded scenarios in {:?}: {} failed; {offered} transfers offered, {acknowledged} acknowledged; {events} events",
        seeds.len(),
        started.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The offered load of the faulty scenarios is at least half of what the same set-up commits
/// with no fault when clients offer more than it can take.
#[test]
fn faulty_scenarios_are_driven_at_half_the_fault_free_throughput_or_more() {
    let saturating = (MAX_BLOCK_TXS * 100) as u32;
    let baseline: Vec<f64> = [4usize, 7]
        .par_iter()
        .map(|validators| {
            let report = run(&Scenario::fault_free(1, *validators, saturating))
                .unwrap_or_else(|f| panic!("fault-free run failed: {f}"));
            throughput(&report)
        })
        .collect();
    let best = baseline.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "fault-free throughput (4 and 7 validators, saturated): {baseline:.0?} transfers/s; faulty scenarios offer {LOAD}"
    );
    assert!(best > 0.0, "the fault-free network committed nothing");
    assert!(
        f64::from(LOAD) >= best / 2.0,
        "faulty scenarios offer {LOAD} transfers/s, less than half of the fault-free {best:.0}"
    );
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3u64, 11] {
        let scenario = Scenario::generate(seed, LOAD);
        let (a, b) = rayon::join(|| run(&scenario), || run(&scenario));
        let (a, b) = (
            a.unwrap_or_else(|f| panic!("{f}")),
            b.unwrap_or_else(|f| panic!("{f}")),
        );
        assert!(a.acknowledged > 0, "seed {seed} acknowledged nothing");
        assert_eq!(a.fingerprint, b.fingerprint, "seed {seed} did not replay");
        assert_eq!(a.events, b.events, "seed {seed} did not replay");
        assert_eq!(a.acknowledged, b.acknowledged, "seed {seed} did not replay");
    }
}

/// The checks can fail: with a quorum of one third instead of two, the partitions of seeds 3
/// and 6 let both sides decide, and the harness reports two blocks at one height.
#[test]
fn a_weakened_quorum_forks_and_the_checks_say_so() {
    let weak = ThresholdParams {
        quorum: ThresholdParam::new(1, 3),
        honest: ThresholdParam::new(1, 3),
    };
    let failures: Vec<_> = [3u64, 6]
        .par_iter()
        .map(|seed| {
            let mut scenario = Scenario::generate(*seed, LOAD);
            scenario.thresholds = weak;
            run(&scenario)
        })
        .collect();
    for (seed, result) in [3, 6].iter().zip(failures) {
        match result {
            Ok(report) => panic!("seed {seed} with a weak quorum passed: {report:?}"),
            Err(failure) => assert!(
                failure.reason.contains("two blocks at height"),
                "seed {seed} failed otherwise: {failure}"
            ),
        }
    }
}
