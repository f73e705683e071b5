//! Micro-benchmarks of custody's RFC 9162 Merkle tree: leaf hashing, appending to the
//! frontier, inclusion proofs and their verification, and whole-tree roots.
//!
//! Run with `cargo bench -p custody-core --bench merkle`; it takes well under a minute.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use custody_core::merkle::{
    Frontier, Hash, inclusion_proof, leaf_hash, root_from_leaves, verify_inclusion,
};

/// `n` distinct leaf hashes.
fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn bench_leaf_hash(c: &mut Criterion) {
    let data = [0x5a_u8; 256];
    let mut g = c.benchmark_group("leaf_hash");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("256B", |b| b.iter(|| leaf_hash(black_box(&data))));
    g.finish();
}

fn bench_frontier(c: &mut Criterion) {
    const N: u64 = 1 << 20;
    let hashes = leaves(N);
    let mut g = c.benchmark_group("frontier");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(N));
    g.bench_function("push_1M", |b| {
        b.iter(|| {
            let mut f = Frontier::new();
            for h in &hashes {
                black_box(f.push(*h));
            }
            f.root()
        })
    });
    g.finish();
}

fn bench_inclusion(c: &mut Criterion) {
    const N: u64 = 1 << 16;
    let hashes = leaves(N);
    let root = root_from_leaves(&hashes);
    let index = 40_503;
    let proof = inclusion_proof(index, &hashes).expect("index in range");
    let mut g = c.benchmark_group("inclusion_65536");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("inclusion_proof", |b| {
        b.iter(|| inclusion_proof(black_box(index), &hashes))
    });
    g.bench_function("verify_inclusion", |b| {
        b.iter(|| {
            verify_inclusion(
                black_box(index),
                N,
                &hashes[index as usize],
                black_box(&proof),
                &root,
            )
        })
    });
    g.finish();
}

fn bench_root(c: &mut Criterion) {
    const N: u64 = 1 << 20;
    let hashes = leaves(N);
    let mut g = c.benchmark_group("root_from_leaves");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(N));
    g.bench_function("1M", |b| b.iter(|| root_from_leaves(black_box(&hashes))));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn main() {
    let mut c = config().configure_from_args();
    bench_leaf_hash(&mut c);
    bench_frontier(&mut c);
    bench_inclusion(&mut c);
    bench_root(&mut c);
    c.final_summary();
}
