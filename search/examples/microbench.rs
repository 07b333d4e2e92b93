//! Micro-benchmarks quoted in the README: non-dominated sorting of one large front, and
//! table-based latency evaluation throughput. Prints one JSON line.
//!
//! ```text
//! cargo run --release -p gpulut-search --example microbench [-- --points 20000 --archs 10000000]
//! ```

use std::hint::black_box;
use std::time::Instant;

use gpulut_search::non_dominated_sort_3d;
use gpulut_search::rng::Rng;
use gpulut_search::synthetic::{CHOICES, LAYERS, Synthetic};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n_points = arg("--points", 20_000);
    let n_archs = arg("--archs", 10_000_000);
    let mut rng = Rng::seed_from_u64(2019);

    // One front: points on the simplex x + y + z = 1 never dominate each other.
    let points: Vec<[f64; 3]> = (0..n_points)
        .map(|_| {
            let (a, b) = (rng.next_f64(), rng.next_f64());
            let (x, y) = if a + b > 1.0 {
                (1.0 - a, 1.0 - b)
            } else {
                (a, b)
            };
            [x, y, 1.0 - x - y]
        })
        .collect();
    let mut sort_ms = Vec::new();
    let mut fronts = 0;
    for _ in 0..11 {
        let t = Instant::now();
        let ranks = non_dominated_sort_3d(black_box(&points)).unwrap_or_default();
        sort_ms.push(t.elapsed().as_secs_f64() * 1e3);
        fronts = ranks.iter().max().map_or(0, |&r| r + 1);
    }

    // Random multi-front input of the same size, for contrast.
    let random: Vec<[f64; 3]> = (0..n_points)
        .map(|_| [rng.next_f64(), rng.next_f64(), rng.next_f64()])
        .collect();
    let mut random_ms = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        black_box(non_dominated_sort_3d(black_box(&random)).unwrap_or_default());
        random_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // Latency of 10M architectures from a table: 20 lookups and a sequential sum each, over a
    // pool of 1M stored architectures (10 passes), single thread.
    let problem = Synthetic::new();
    let table = problem.latency_table();
    let pool = 1_000_000.min(n_archs.max(1));
    let archs: Vec<[u8; LAYERS]> = (0..pool)
        .map(|_| std::array::from_fn(|_| rng.below(CHOICES as u64) as u8))
        .collect();
    let t = Instant::now();
    let mut total = 0.0;
    let mut done = 0usize;
    while done < n_archs {
        for a in archs.iter().take(n_archs - done) {
            let mut lat = 0.0;
            for (row, &c) in table.iter().zip(black_box(a)) {
                lat += row[usize::from(c)];
            }
            total += lat;
        }
        done += pool.min(n_archs - done);
    }
    let secs = t.elapsed().as_secs_f64();
    black_box(total);

    println!(
        "{{\"nds_points\":{n_points},\"nds_fronts\":{fronts},\"nds_single_front_ms\":{:.3},\
         \"nds_random_ms\":{:.3},\"latency_archs\":{n_archs},\"latency_evals_per_s\":{:.0}}}",
        median(sort_ms),
        median(random_ms),
        n_archs as f64 / secs
    );
}
