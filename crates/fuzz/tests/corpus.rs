//! Every fuzz target over its corpus (`fuzz/corpus/<target>/*`: seeds and every crash ever
//! found), then over seeded random and mutated inputs: a short, deterministic smoke run on
//! each `cargo test`. Long runs use cargo-fuzz (`scripts/fuzz`).

use rand::{Rng, SeedableRng};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    inputs.sort();
    inputs
}

fn mutate(rng: &mut rand::rngs::StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..8) {
        match rng.gen_range(0..4) {
            0 if !out.is_empty() => {
                let i = rng.gen_range(0..out.len());
                out[i] = rng.gen();
            }
            1 if !out.is_empty() => {
                let i = rng.gen_range(0..out.len());
                out.truncate(i);
            }
            2 => {
                let i = rng.gen_range(0..=out.len());
                out.insert(i, rng.gen());
            }
            _ if !out.is_empty() => {
                let i = rng.gen_range(0..out.len());
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            _ => out.push(rng.gen()),
        }
    }
    out
}

#[test]
fn every_target_survives_its_corpus_and_a_seeded_smoke_run() {
    for (name, target) in trellis_fuzz::TARGETS {
        let inputs = corpus(name);
        assert!(!inputs.is_empty(), "fuzz/corpus/{name} has no seeds");
        for input in &inputs {
            target(input);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e11);
        for i in 0..2_000 {
            let input = if i % 4 == 0 {
                let len = rng.gen_range(0..512);
                (0..len).map(|_| rng.gen()).collect()
            } else {
                mutate(&mut rng, &inputs[i % inputs.len()])
            };
            target(&input);
        }
    }
}
