//! The shared synthetic benchmark (`../shared/bench/nsga/`), for side-by-side runs with pymoo.
//!
//! ```text
//! cargo run --release -p gpulut-search --example synthetic -- \
//!     --pop N --gens G --seed S [--weights 2,2,1] [--front-out FILE.csv]
//! ```
//!
//! Prints one JSON line (`wall_s`, `ms_per_gen`, `hv`, ...). The front goes to FILE.csv as rows
//! `f1,f2,f3` of `synth.normalise`, no header, as `run_pymoo.py` writes them and `hv.py` reads
//! them. Generations count as pymoo counts them: the initial population is generation 1.

use std::process::ExitCode;
use std::time::Instant;

use gpulut_search::synthetic::Synthetic;
use gpulut_search::{Config, Engine, HV_REFERENCE, Weights, hypervolume_3d};

struct Args {
    pop: usize,
    gens: u32,
    seed: u64,
    weights: Weights,
    front_out: Option<String>,
    crossover: Option<f64>,
    mutation: Option<f64>,
}

const USAGE: &str = "usage: synthetic --pop N --gens G --seed S [--weights A,L,P] [--front-out FILE.csv] \
                     [--crossover P] [--mutation P]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        pop: 100,
        gens: 200,
        seed: 1,
        weights: Weights::default(),
        front_out: None,
        crossover: None,
        mutation: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag}: {what}, got {value:?}");
        match flag.as_str() {
            "--pop" => args.pop = value.parse().map_err(|_| bad("need an integer"))?,
            "--gens" => args.gens = value.parse().map_err(|_| bad("need an integer"))?,
            "--seed" => args.seed = value.parse().map_err(|_| bad("need an unsigned integer"))?,
            "--weights" => {
                let w: Vec<f64> = value
                    .split(',')
                    .map(|p| p.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("need three numbers A,L,P"))?;
                let [accuracy, latency, params] = w[..] else {
                    return Err(bad("need three numbers A,L,P"));
                };
                args.weights = Weights {
                    accuracy,
                    latency,
                    params,
                };
            }
            "--front-out" => args.front_out = Some(value),
            "--crossover" => {
                args.crossover = Some(value.parse().map_err(|_| bad("need a probability"))?)
            }
            "--mutation" => {
                args.mutation = Some(value.parse().map_err(|_| bad("need a probability"))?)
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let problem = Synthetic::new();
    let defaults = Config::new(args.pop, args.gens, args.seed);
    let config = Config {
        crossover_prob: args.crossover.unwrap_or(defaults.crossover_prob),
        mutation_prob: args.mutation.or(defaults.mutation_prob),
        weights: args.weights,
        bounds: Some(problem.bounds()),
        ..Config::new(args.pop, args.gens, args.seed)
    };
    let mut engine = match Engine::new(Synthetic::problem_size(), config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };

    let start = Instant::now();
    let mut evaluations = 0usize;
    while !engine.is_done() {
        let batch = engine.ask();
        evaluations += batch.len();
        let objectives = batch
            .iter()
            .map(|g| problem.evaluate(g))
            .collect::<Result<Vec<_>, _>>();
        if let Err(e) = objectives.and_then(|o| engine.tell(o)) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    let wall = start.elapsed().as_secs_f64();

    let front: Vec<[f64; 3]> = engine
        .front()
        .iter()
        .map(|m| problem.normalise(&m.objectives))
        .collect();
    let hv = hypervolume_3d(&front, HV_REFERENCE);
    if let Some(path) = &args.front_out {
        // `{}` prints the shortest decimal that parses back to the same f64.
        let csv: String = front
            .iter()
            .map(|[a, b, c]| format!("{a},{b},{c}\n"))
            .collect();
        if let Err(e) = std::fs::write(path, csv) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{{\"engine\":\"gpulut-search\",\"pop\":{},\"ngen\":{},\"seed\":{},\"wall_s\":{},\"ms_per_gen\":{},\
         \"n_eval\":{},\"us_per_eval_total\":{},\"n_front0\":{},\"hv\":{}}}",
        args.pop,
        args.gens,
        args.seed,
        wall,
        1e3 * wall / f64::from(args.gens),
        evaluations,
        1e6 * wall / evaluations.max(1) as f64,
        front.len(),
        hv
    );
    ExitCode::SUCCESS
}
