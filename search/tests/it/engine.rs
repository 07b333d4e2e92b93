//! Properties of the engine: ranking, crowding, weights, duplicates, constraints, and
//! bit-identical resume from checkpoints.

use std::collections::HashSet;

use gpulut_search::synthetic::Synthetic;
use gpulut_search::{
    Checkpoint, Config, Constraints, Engine, Genome, Objectives, ProblemSize, Weights, dominates,
    survive,
};
use proptest::prelude::*;

type Eval = Box<dyn Fn(&[u8]) -> Objectives>;

/// A cheap objective function with many ties, so ranking and crowding see duplicates of
/// objective vectors (never of genomes).
fn coarse(g: &[u8]) -> Objectives {
    let s: u32 = g.iter().map(|&c| u32::from(c)).sum();
    let odd = g.iter().filter(|&&c| c % 2 == 1).count() as f64;
    let first = f64::from(g[0]);
    Objectives::new(
        f64::from(s % 7) + odd,
        f64::from(s / 3) - first,
        odd * 0.5 + f64::from(s % 5),
    )
    .with_macs(f64::from(s))
}

fn run(engine: &mut Engine, eval: &dyn Fn(&[u8]) -> Objectives) {
    while !engine.is_done() {
        let batch = engine.ask();
        engine
            .tell(batch.iter().map(|g| eval(g)).collect())
            .unwrap();
    }
}

fn min_vec(o: &Objectives) -> [f64; 3] {
    o.to_minimisation()
}

fn synthetic_eval() -> impl Fn(&[u8]) -> Objectives {
    let s = Synthetic::new();
    move |g| s.evaluate(g).unwrap()
}

fn config(pop: usize, gens: u32, seed: u64) -> Config {
    Config {
        bounds: Some(Synthetic::new().bounds()),
        ..Config::new(pop, gens, seed)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn front_is_not_dominated_and_everyone_is_ranked(
        seed: u64, pop in 4usize..40, gens in 1u32..8, use_coarse: bool,
    ) {
        let (problem, eval): (ProblemSize, Eval) = if use_coarse {
            (ProblemSize::uniform(6, 5).unwrap(), Box::new(coarse))
        } else {
            (Synthetic::problem_size(), Box::new(synthetic_eval()))
        };
        let mut e = Engine::new(problem, Config::new(pop, gens, seed)).unwrap();
        run(&mut e, &*eval);
        let population = e.population();
        prop_assert!(population.len() <= pop);
        let front = e.front();
        prop_assert!(!front.is_empty());
        for f in &front {
            for m in population {
                prop_assert!(!dominates(&min_vec(&m.objectives), &min_vec(&f.objectives)));
            }
        }
        // Stored ranks are the ranks of the population on its own.
        let objs: Vec<Objectives> = population.iter().map(|m| m.objectives).collect();
        let s = survive(&objs, &Constraints::default(), &Weights::default(), pop).unwrap();
        let stored: Vec<u32> = population.iter().map(|m| m.rank).collect();
        prop_assert_eq!(s.ranks, stored);
        prop_assert_eq!(e.history().len() as u32, gens);
    }

    #[test]
    fn boundary_points_get_infinite_crowding(
        objs in proptest::collection::vec((0i32..6, 0i32..6, 0i32..6), 1..60),
        w in (0.1f64..10.0, 0.1f64..10.0, 0.1f64..10.0),
    ) {
        let objs: Vec<Objectives> = objs.iter()
            .map(|&(a, l, p)| Objectives::new(f64::from(a), f64::from(l), f64::from(p)))
            .collect();
        let weights = Weights { accuracy: w.0, latency: w.1, params: w.2 };
        let s = survive(&objs, &Constraints::default(), &weights, objs.len()).unwrap();
        let max_rank = *s.ranks.iter().max().unwrap();
        for r in 0..=max_rank {
            let front: Vec<usize> = (0..objs.len()).filter(|&i| s.ranks[i] == r).collect();
            for m in 0..3 {
                let v = |i: usize| min_vec(&objs[i])[m];
                let lo = front.iter().map(|&i| v(i)).fold(f64::INFINITY, f64::min);
                let hi = front.iter().map(|&i| v(i)).fold(f64::NEG_INFINITY, f64::max);
                if hi > lo {
                    prop_assert!(front.iter().any(|&i| v(i) == lo && s.crowding[i].is_infinite()));
                    prop_assert!(front.iter().any(|&i| v(i) == hi && s.crowding[i].is_infinite()));
                }
            }
            for &i in &front {
                prop_assert!(s.crowding[i] >= 0.0);
            }
        }
    }

    #[test]
    fn weights_act_only_through_crowding(
        objs in proptest::collection::vec((0i32..8, 0i32..8, 0i32..8), 4..80),
        mu_frac in 0.1f64..1.0,
        w in (0.1f64..10.0, 0.1f64..10.0, 0.1f64..10.0),
    ) {
        let objs: Vec<Objectives> = objs.iter()
            .map(|&(a, l, p)| Objectives::new(f64::from(a), f64::from(l), f64::from(p)))
            .collect();
        let mu = ((objs.len() as f64 * mu_frac) as usize).max(1);
        let none = Constraints::default();
        let a = survive(&objs, &none, &Weights::default(), mu).unwrap();
        let b = survive(&objs, &none, &Weights { accuracy: w.0, latency: w.1, params: w.2 }, mu).unwrap();
        prop_assert_eq!(&a.ranks, &b.ranks);
        prop_assert_eq!(a.survivors.len(), b.survivors.len());
        // Only the front split by truncation can differ, and only in which members it keeps.
        let split = a.survivors.iter().map(|&i| a.ranks[i]).max().unwrap();
        let below = |s: &[usize]| s.iter().copied().filter(|&i| a.ranks[i] < split).collect::<Vec<_>>();
        prop_assert_eq!(below(&a.survivors), below(&b.survivors));
        let at = |s: &[usize]| s.iter().filter(|&&i| a.ranks[i] == split).count();
        prop_assert_eq!(at(&a.survivors), at(&b.survivors));
    }

    #[test]
    fn resume_at_any_generation_is_bit_identical(
        seed: u64, pop in 4usize..30, gens in 2u32..10, stop_frac in 0.0f64..1.0, mid_batch: bool,
        use_coarse: bool,
    ) {
        let (problem, eval): (ProblemSize, Eval) = if use_coarse {
            (ProblemSize::uniform(6, 5).unwrap(), Box::new(coarse))
        } else {
            (Synthetic::problem_size(), Box::new(synthetic_eval()))
        };
        let cfg = Config {
            constraints: Constraints { max_macs: Some(25.0), ..Default::default() },
            ..config(pop, gens, seed)
        };
        let cfg = if use_coarse { cfg } else { Config { constraints: Constraints { max_latency: Some(40.0), ..Default::default() }, ..cfg } };
        let mut straight = Engine::new(problem.clone(), cfg.clone()).unwrap();
        let eval_macs = |g: &[u8]| { let o = eval(g); if o.macs.is_some() { o } else { o.with_macs(1.0) } };
        run(&mut straight, &eval_macs);

        let stop = (f64::from(gens) * stop_frac) as u32;
        let mut first = Engine::new(problem, cfg).unwrap();
        while first.generation() < stop {
            let batch = first.ask();
            first.tell(batch.iter().map(|g| eval_macs(g)).collect()).unwrap();
        }
        if mid_batch {
            first.ask();
        }
        let json = serde_json::to_string(&first.checkpoint()).unwrap();
        let restored: Checkpoint = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&restored, &first.checkpoint());
        let mut resumed = Engine::resume(restored).unwrap();
        run(&mut resumed, &eval_macs);
        prop_assert_eq!(resumed.population(), straight.population());
        prop_assert_eq!(resumed.history(), straight.history());
        prop_assert_eq!(resumed.checkpoint(), straight.checkpoint());
    }

    #[test]
    fn offspring_are_new_and_distinct(seed: u64, pop in 4usize..60, lambda in 1usize..80, gens in 2u32..6) {
        let eval = synthetic_eval();
        let cfg = Config { offspring: Some(lambda), ..config(pop, gens, seed) };
        let mut e = Engine::new(Synthetic::problem_size(), cfg).unwrap();
        let mut asked_before = false;
        while !e.is_done() {
            let population: HashSet<Genome> = e.population().iter().map(|m| m.genome.clone()).collect();
            let batch = e.ask();
            let distinct: HashSet<&Genome> = batch.iter().collect();
            prop_assert_eq!(distinct.len(), batch.len());
            prop_assert!(batch.iter().all(|g| !population.contains(g)));
            // 12^20 genomes: nothing should run short.
            prop_assert_eq!(batch.len(), if asked_before { lambda } else { pop });
            asked_before = true;
            e.tell(batch.iter().map(|g| eval(g)).collect()).unwrap();
        }
    }

    #[test]
    fn same_seed_same_front_different_seed_differs(seed: u64) {
        let eval = synthetic_eval();
        let mut a = Engine::new(Synthetic::problem_size(), config(16, 4, seed)).unwrap();
        let mut b = Engine::new(Synthetic::problem_size(), config(16, 4, seed)).unwrap();
        let mut c = Engine::new(Synthetic::problem_size(), config(16, 4, seed ^ 1)).unwrap();
        run(&mut a, &eval);
        run(&mut b, &eval);
        run(&mut c, &eval);
        prop_assert_eq!(a.population(), b.population());
        prop_assert_ne!(a.population(), c.population());
    }
}

#[test]
fn constraints_keep_the_front_feasible() {
    let s = Synthetic::new();
    let cfg = Config {
        constraints: Constraints {
            max_latency: Some(30.0),
            max_params: Some(8.0),
            max_macs: None,
        },
        ..config(40, 20, 3)
    };
    let mut e = Engine::new(Synthetic::problem_size(), cfg).unwrap();
    run(&mut e, &|g| s.evaluate(g).unwrap());
    let front = e.front();
    assert!(!front.is_empty());
    for m in &front {
        assert!(m.objectives.latency <= 30.0 && m.objectives.params <= 8.0);
        assert_eq!(m.rank, 0);
    }
    // Feasible members outrank every infeasible one.
    let pop = e.population();
    let worst_feasible = pop
        .iter()
        .filter(|m| m.is_feasible())
        .map(|m| m.rank)
        .max()
        .unwrap();
    assert!(
        pop.iter()
            .filter(|m| !m.is_feasible())
            .all(|m| m.rank > worst_feasible)
    );
}

#[test]
fn hypervolume_history_grows_on_the_synthetic_problem() {
    let s = Synthetic::new();
    let mut e = Engine::new(Synthetic::problem_size(), config(100, 60, 1)).unwrap();
    run(&mut e, &|g| s.evaluate(g).unwrap());
    let h = e.history();
    assert_eq!(h.len(), 60);
    assert!(h[59].hypervolume > h[0].hypervolume);
    assert!(
        h[59].hypervolume > 0.8 && h[59].hypervolume < 1.331,
        "{}",
        h[59].hypervolume
    );
    let points: Vec<[f64; 3]> = e
        .front()
        .iter()
        .map(|m| s.normalise(&m.objectives))
        .collect();
    assert_eq!(
        gpulut_search::hypervolume_3d(&points, [1.1; 3]),
        h[59].hypervolume
    );
}

#[test]
fn checkpoint_rejects_tampering() {
    let s = Synthetic::new();
    let mut e = Engine::new(Synthetic::problem_size(), config(8, 5, 2)).unwrap();
    for _ in 0..2 {
        let b = e.ask();
        e.tell(b.iter().map(|g| s.evaluate(g).unwrap()).collect())
            .unwrap();
    }
    let json = serde_json::to_value(e.checkpoint()).unwrap();
    let tamper = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = json.clone();
        f(&mut v);
        serde_json::from_value::<Checkpoint>(v)
    };
    assert!(tamper(&|_| {}).is_ok());
    assert!(tamper(&|v| v["format"] = 99.into()).is_err());
    assert!(tamper(&|v| v["generation"] = 7.into()).is_err());
    assert!(tamper(&|v| v["rng"] = serde_json::json!(["0", "0", "0", "0"])).is_err());
    assert!(tamper(&|v| v["population"][0]["genome"] = "ff".into()).is_err());
    assert!(
        tamper(
            &|v| v["population"][0]["genome"] = "0c0000000000000000000000000000000000000000".into()
        )
        .is_err()
    );
    assert!(tamper(&|v| v["population"][0]["latency"] = "NaN".into()).is_err());
    assert!(tamper(&|v| v["population"][0]["crowding"] = "-1".into()).is_err());
    assert!(tamper(&|v| v["config"]["population"] = 2.into()).is_err());
    assert!(tamper(&|v| v["problem"]["choices"] = serde_json::json!([0])).is_err());
    // Crowding is often infinite; it survives JSON as a string.
    assert!(json.to_string().contains("\"inf\""));
}
