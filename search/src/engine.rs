//! The weighted NSGA-II engine behind an ask/tell interface.
//!
//! The server's worker evaluates architectures asynchronously (a remote accuracy service,
//! latency tables) and checkpoints between generations, so the engine never calls an
//! evaluator itself: [`Engine::ask`] hands out genomes, [`Engine::tell`] takes their objectives
//! in the same order, and [`Engine::checkpoint`] captures everything needed to continue
//! bit-identically in another process.
//!
//! One generation: binary tournaments on (rank, weighted crowding) pick parents; uniform
//! crossover and per-layer mutation to a different choice make children; children that repeat
//! each other or the population are dropped and replaced; then parents and children compete
//! in (μ + λ) survival by constraint-domination rank, then weighted crowding distance.

use serde::{Deserialize, Serialize};

use crate::crowding::front_crowding;
use crate::hypervolume::Hypervolume3d;
use crate::operators::{GenomeSet, fill_random, mutate, uniform_crossover};
use crate::rng::Rng;
use crate::sort::NonDominatedSorter;
use crate::{
    Bounds, Checkpoint, Constraints, Genome, Objectives, ProblemSize, SearchError, Weights,
};

/// Smallest population: binary tournaments and crowding need a few members to mean anything.
pub const MIN_POPULATION: usize = 4;
/// Largest population (and offspring count): keeps one generation's memory and time bounded
/// for a request that comes in over HTTP.
pub const MAX_POPULATION: usize = 100_000;
/// Most generations a search may ask for.
pub const MAX_GENERATIONS: u32 = 1_000_000;
/// Reference point of the per-generation hypervolume, in the normalised space where the
/// [`Bounds`] ideal is 0 and the nadir 1.
pub const HV_REFERENCE: [f64; 3] = [1.1, 1.1, 1.1];

/// How children that repeat the population are replaced: this many tries per wanted child
/// before giving up (only a nearly exhausted search space gets there).
const ATTEMPTS_PER_CHILD: usize = 50;
/// A space at most this many times the batch size is handled by enumeration, not sampling.
const SMALL_SPACE_FACTOR: u128 = 4;

/// Search settings. Everything that changes results is here, so a checkpoint that carries the
/// config reproduces the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// μ: members kept each generation (`MIN_POPULATION..=MAX_POPULATION`).
    pub population: usize,
    /// λ: children per generation; `None` means μ.
    #[serde(default)]
    pub offspring: Option<usize>,
    /// Generations including the initial population's: `generations = G` evaluates the initial
    /// population and then G - 1 batches of children (pymoo counts the same way).
    pub generations: u32,
    /// Probability that a pair of parents is crossed over rather than copied.
    #[serde(default = "default_crossover")]
    pub crossover_prob: f64,
    /// Per-layer mutation probability; `None` means 1 / layers.
    #[serde(default)]
    pub mutation_prob: Option<f64>,
    /// Seed of the engine's random generator.
    pub seed: u64,
    /// Crowding weights (MoGA 2:2:1 by default).
    #[serde(default)]
    pub weights: Weights,
    /// Upper limits applied by constraint-domination.
    #[serde(default)]
    pub constraints: Constraints,
    /// Fixed normalisation for the per-generation hypervolume; `None` normalises each generation
    /// by its own population's ideal and nadir (see [`GenerationStats::hypervolume`]).
    #[serde(default)]
    pub bounds: Option<Bounds>,
}

fn default_crossover() -> f64 {
    0.9
}

impl Config {
    /// A config with MoGA's defaults: λ = μ, crossover 0.9, mutation 1/layers, weights 2:2:1, no
    /// constraints, no fixed bounds.
    pub fn new(population: usize, generations: u32, seed: u64) -> Self {
        Self {
            population,
            offspring: None,
            generations,
            crossover_prob: default_crossover(),
            mutation_prob: None,
            seed,
            weights: Weights::default(),
            constraints: Constraints::default(),
            bounds: None,
        }
    }

    /// λ after applying its default.
    pub fn offspring_count(&self) -> usize {
        self.offspring.unwrap_or(self.population)
    }

    /// Per-layer mutation probability after applying its default.
    pub fn mutation_prob_for(&self, problem: &ProblemSize) -> f64 {
        self.mutation_prob.unwrap_or(1.0 / problem.layers() as f64)
    }

    /// Checks every setting, naming the first one out of range.
    pub fn validate(&self) -> Result<(), SearchError> {
        let invalid = |field, reason: String| Err(SearchError::InvalidConfig { field, reason });
        if !(MIN_POPULATION..=MAX_POPULATION).contains(&self.population) {
            return invalid(
                "population",
                format!(
                    "need {MIN_POPULATION}..={MAX_POPULATION}, got {}",
                    self.population
                ),
            );
        }
        if let Some(l) = self.offspring.filter(|l| !(1..=MAX_POPULATION).contains(l)) {
            return invalid("offspring", format!("need 1..={MAX_POPULATION}, got {l}"));
        }
        if !(1..=MAX_GENERATIONS).contains(&self.generations) {
            return invalid(
                "generations",
                format!("need 1..={MAX_GENERATIONS}, got {}", self.generations),
            );
        }
        if !(0.0..=1.0).contains(&self.crossover_prob) {
            return invalid(
                "crossover_prob",
                format!("need a probability in [0, 1], got {}", self.crossover_prob),
            );
        }
        if let Some(p) = self.mutation_prob.filter(|p| !(0.0..=1.0).contains(p)) {
            return invalid(
                "mutation_prob",
                format!("need a probability in [0, 1], got {p}"),
            );
        }
        self.weights.normalised()?;
        self.constraints.validate()?;
        if let Some(b) = &self.bounds {
            b.validate()?;
        }
        Ok(())
    }
}

/// One population member with what survival decided about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The architecture.
    pub genome: Genome,
    /// What the evaluator told.
    pub objectives: Objectives,
    /// Constraint-domination rank: 0 is the best front; infeasible members rank after every
    /// feasible one.
    pub rank: u32,
    /// Weighted crowding distance within its front when it was selected (infinite at a front's
    /// extremes). It is the value tournaments use, computed over the front before truncation,
    /// as NSGA-II does.
    pub crowding: f64,
    /// Total normalised constraint violation; 0 means feasible.
    pub violation: f64,
}

impl Member {
    /// Whether the member meets every constraint.
    pub fn is_feasible(&self) -> bool {
        self.violation == 0.0
    }
}

/// What one generation produced, for progress views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// 1 for the initial population.
    pub generation: u32,
    /// Genomes evaluated in this generation.
    pub evaluated: usize,
    /// Members of the feasible first front.
    pub front_size: usize,
    /// Feasible members of the population.
    pub feasible: usize,
    /// Hypervolume of the feasible first front, normalised by [`Config::bounds`] (reference
    /// [`HV_REFERENCE`], at most 1.331 for points inside the bounds).
    ///
    /// Without fixed bounds, each generation is normalised by its own population's ideal and
    /// nadir: the value then describes the front's shape within the population and is not
    /// comparable between generations. Give bounds (e.g. from latency tables and accuracy
    /// ranges) for a progress curve.
    pub hypervolume: f64,
    /// Highest accuracy among feasible members.
    pub best_accuracy: Option<f64>,
    /// Lowest latency among feasible members.
    pub best_latency: Option<f64>,
    /// Highest params among feasible members.
    pub best_params: Option<f64>,
}

/// Ranks, crowding and survivors of one (μ + λ) selection.
#[derive(Debug, Clone, PartialEq)]
pub struct Survival {
    /// Constraint-domination rank of every candidate.
    pub ranks: Vec<u32>,
    /// Weighted crowding distance of every candidate within its front.
    pub crowding: Vec<f64>,
    /// Indices of the survivors, by rank then index.
    pub survivors: Vec<usize>,
}

/// NSGA-II survival on its own: ranks every candidate by constraint-domination, computes the
/// weighted crowding of every front, and keeps `mu` of them (whole fronts in rank order, the
/// front that does not fit by descending crowding, ties by index).
///
/// The engine does exactly this each generation; it is public so callers can rank sets of
/// their own (e.g. merged fronts of several searches).
pub fn survive(
    objectives: &[Objectives],
    constraints: &Constraints,
    weights: &Weights,
    mu: usize,
) -> Result<Survival, SearchError> {
    constraints.validate()?;
    let w = weights.normalised()?;
    let needs_macs = constraints.max_macs.is_some();
    for (index, o) in objectives.iter().enumerate() {
        o.check(needs_macs)
            .map_err(|reason| SearchError::InvalidObjectives { index, reason })?;
    }
    let points: Vec<[f64; 3]> = objectives.iter().map(Objectives::to_minimisation).collect();
    let violations: Vec<f64> = objectives
        .iter()
        .map(|o| constraints.violation(o))
        .collect();
    let mut work = Workspace::default();
    work.rank_and_select(&points, &violations, &w, mu, true)?;
    Ok(Survival {
        ranks: work.ranks,
        crowding: work.crowding,
        survivors: work.selected,
    })
}

/// Buffers reused from generation to generation; not part of the engine's state.
#[derive(Debug, Clone, Default)]
struct Workspace {
    sorter: NonDominatedSorter,
    hypervolume: Hypervolume3d,
    seen: GenomeSet,
    first: Vec<u8>,
    second: Vec<u8>,
    cursor: Vec<usize>,
    points: Vec<[f64; 3]>,
    violations: Vec<f64>,
    feasible: Vec<usize>,
    feasible_points: Vec<[f64; 3]>,
    feasible_ranks: Vec<u32>,
    infeasible: Vec<usize>,
    ranks: Vec<u32>,
    crowding: Vec<f64>,
    front_start: Vec<usize>,
    by_front: Vec<usize>,
    sorted: Vec<(u64, u32)>,
    cut: Vec<usize>,
    slots: Vec<Option<Member>>,
    selected: Vec<usize>,
    hv_points: Vec<[f64; 3]>,
}

impl Workspace {
    /// Ranks `points` (minimisation) under constraint-domination, computes crowding front by
    /// front, and selects `mu` indices into `self.selected`.
    ///
    /// Fronts after the last selected one get crowding only when `all_fronts` is set: the engine
    /// discards them, so it skips the work.
    fn rank_and_select(
        &mut self,
        points: &[[f64; 3]],
        violations: &[f64],
        weights: &[f64; 3],
        mu: usize,
        all_fronts: bool,
    ) -> Result<(), SearchError> {
        let n = points.len();
        self.ranks.clear();
        self.ranks.resize(n, 0);
        self.feasible.clear();
        self.infeasible.clear();
        for (i, &v) in violations.iter().enumerate() {
            if v == 0.0 {
                self.feasible.push(i);
            } else {
                self.infeasible.push(i);
            }
        }
        let mut fronts = 0u32;
        if self.feasible.len() == n {
            self.sorter.sort_3d(points, &mut self.ranks)?;
        } else if !self.feasible.is_empty() {
            self.feasible_points.clear();
            self.feasible_points
                .extend(self.feasible.iter().map(|&i| points[i]));
            self.sorter
                .sort_3d(&self.feasible_points, &mut self.feasible_ranks)?;
            for (&i, &r) in self.feasible.iter().zip(&self.feasible_ranks) {
                self.ranks[i] = r;
            }
        }
        for &i in &self.feasible {
            fronts = fronts.max(self.ranks[i] + 1);
        }
        // Infeasible members are ordered by violation alone; equal violations share a rank.
        self.infeasible
            .sort_by(|&a, &b| violations[a].total_cmp(&violations[b]).then(a.cmp(&b)));
        let mut last: Option<f64> = None;
        let mut rank = fronts;
        for &i in &self.infeasible {
            if last.is_some_and(|v| v != violations[i]) {
                rank += 1;
            }
            last = Some(violations[i]);
            self.ranks[i] = rank;
        }
        let count = if self.infeasible.is_empty() {
            fronts
        } else {
            rank + 1
        } as usize;

        // Counting sort by rank: front r is by_front[front_start[r]..front_start[r + 1]], in
        // ascending index order, which the stable sorts in crowding rely on for ties.
        self.front_start.clear();
        self.front_start.resize(count + 1, 0);
        for &r in &self.ranks {
            self.front_start[r as usize + 1] += 1;
        }
        for r in 0..count {
            self.front_start[r + 1] += self.front_start[r];
        }
        self.by_front.clear();
        self.by_front.resize(n, 0);
        self.cursor.clear();
        self.cursor.extend_from_slice(&self.front_start);
        for (i, &r) in self.ranks.iter().enumerate() {
            self.by_front[self.cursor[r as usize]] = i;
            self.cursor[r as usize] += 1;
        }

        self.crowding.clear();
        self.crowding.resize(n, 0.0);
        self.selected.clear();
        for r in 0..count {
            let full = self.selected.len() >= mu;
            if full && !all_fronts {
                break;
            }
            let front = &self.by_front[self.front_start[r]..self.front_start[r + 1]];
            front_crowding(points, front, weights, &mut self.crowding, &mut self.sorted);
            if full {
                continue;
            }
            let room = mu - self.selected.len();
            if front.len() <= room {
                self.selected.extend_from_slice(front);
            } else {
                let crowding = &self.crowding;
                self.cut.clear();
                self.cut.extend_from_slice(front);
                self.cut
                    .sort_by(|&a, &b| crowding[b].total_cmp(&crowding[a]));
                self.cut.truncate(room);
                self.cut.sort_unstable();
                self.selected.extend_from_slice(&self.cut);
            }
        }
        Ok(())
    }
}

/// Weighted NSGA-II with an ask/tell interface.
///
/// ```
/// use gpulut_search::{Config, Engine, Objectives, ProblemSize};
///
/// let mut engine = Engine::new(ProblemSize::uniform(4, 3).unwrap(), Config::new(8, 5, 1)).unwrap();
/// while !engine.is_done() {
///     let batch = engine.ask();
///     let objectives = batch
///         .iter()
///         .map(|g| {
///             let s: f64 = g.iter().map(|&c| f64::from(c)).sum();
///             Objectives::new(s, s * s, 1.0)
///         })
///         .collect();
///     engine.tell(objectives).unwrap();
/// }
/// assert!(!engine.front().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    problem: ProblemSize,
    config: Config,
    weights: [f64; 3],
    mutation_prob: f64,
    rng: Rng,
    generation: u32,
    population: Vec<Member>,
    pending: Option<Vec<Genome>>,
    history: Vec<GenerationStats>,
    work: Workspace,
}

impl Engine {
    /// A fresh search. Fails when the config is out of range.
    pub fn new(problem: ProblemSize, config: Config) -> Result<Self, SearchError> {
        config.validate()?;
        let rng = Rng::seed_from_u64(config.seed);
        Self::assemble(problem, config, rng, 0, Vec::new(), None, Vec::new())
    }

    /// Continues a search from a checkpoint; the continuation is bit-identical to a run that
    /// was never interrupted.
    pub fn resume(checkpoint: Checkpoint) -> Result<Self, SearchError> {
        checkpoint.validate()?;
        let Checkpoint {
            problem,
            config,
            generation,
            population,
            pending,
            rng,
            history,
        } = checkpoint;
        let rng = Rng::from_state(rng)?;
        let mut engine = Self::assemble(
            problem, config, rng, generation, population, pending, history,
        )?;
        // Violations are a pure function of the objectives and the constraints: recomputed
        // rather than trusted.
        let constraints = engine.config.constraints;
        for m in &mut engine.population {
            m.violation = constraints.violation(&m.objectives);
        }
        Ok(engine)
    }

    fn assemble(
        problem: ProblemSize,
        config: Config,
        rng: Rng,
        generation: u32,
        population: Vec<Member>,
        pending: Option<Vec<Genome>>,
        history: Vec<GenerationStats>,
    ) -> Result<Self, SearchError> {
        let weights = config.weights.normalised()?;
        let mutation_prob = config.mutation_prob_for(&problem);
        Ok(Self {
            problem,
            config,
            weights,
            mutation_prob,
            rng,
            generation,
            population,
            pending,
            history,
            work: Workspace::default(),
        })
    }

    /// The next genomes to evaluate: the initial population the first time, then a generation of
    /// children. Asking again before `tell` returns the same batch. Empty once the search is done.
    ///
    /// A batch can be shorter than μ or λ only when the search space has too few unseen genomes
    /// left (children repeating each other or the population are never handed out).
    pub fn ask(&mut self) -> Vec<Genome> {
        if self.is_done() {
            return Vec::new();
        }
        if let Some(batch) = &self.pending {
            return batch.clone();
        }
        let batch = if self.population.is_empty() {
            self.initial_population()
        } else {
            self.offspring()
        };
        self.pending = Some(batch.clone());
        batch
    }

    /// Objectives of the last asked batch, in its order. On error nothing changes and the batch
    /// stays outstanding, so the caller can re-evaluate and tell again.
    pub fn tell(&mut self, objectives: Vec<Objectives>) -> Result<(), SearchError> {
        let Some(batch) = self.pending.as_ref() else {
            return Err(SearchError::NothingAsked);
        };
        if objectives.len() != batch.len() {
            return Err(SearchError::LengthMismatch {
                expected: batch.len(),
                got: objectives.len(),
            });
        }
        let constraints = self.config.constraints;
        let needs_macs = constraints.max_macs.is_some();
        for (index, o) in objectives.iter().enumerate() {
            o.check(needs_macs)
                .map_err(|reason| SearchError::InvalidObjectives { index, reason })?;
        }
        let batch = self.pending.take().unwrap_or_default();
        let evaluated = batch.len();
        let mut combined = std::mem::take(&mut self.population);
        combined.extend(
            batch
                .into_iter()
                .zip(objectives)
                .map(|(genome, objectives)| Member {
                    genome,
                    violation: constraints.violation(&objectives),
                    objectives,
                    rank: 0,
                    crowding: 0.0,
                }),
        );

        let work = &mut self.work;
        let mut points = std::mem::take(&mut work.points);
        let mut violations = std::mem::take(&mut work.violations);
        points.clear();
        points.extend(combined.iter().map(|m| m.objectives.to_minimisation()));
        violations.clear();
        violations.extend(combined.iter().map(|m| m.violation));
        let ranked = work.rank_and_select(
            &points,
            &violations,
            &self.weights,
            self.config.population,
            false,
        );
        work.points = points;
        work.violations = violations;
        ranked?;

        // Move the survivors out in selection order (rank, then index); the rest drop here.
        let slots = &mut work.slots;
        slots.clear();
        slots.extend(combined.into_iter().map(Some));
        let mut population = Vec::with_capacity(work.selected.len());
        for &i in &work.selected {
            if let Some(mut m) = slots[i].take() {
                m.rank = work.ranks[i];
                m.crowding = work.crowding[i];
                population.push(m);
            }
        }
        slots.clear();
        self.population = population;
        self.generation += 1;
        let stats = self.stats(evaluated);
        self.history.push(stats);
        Ok(())
    }

    fn stats(&mut self, evaluated: usize) -> GenerationStats {
        let feasible = || self.population.iter().filter(|m| m.is_feasible());
        let bounds = self
            .config
            .bounds
            .or_else(|| Bounds::of(feasible().map(|m| &m.objectives)));
        let hv_points = &mut self.work.hv_points;
        hv_points.clear();
        if let Some(b) = bounds {
            hv_points.extend(
                self.population
                    .iter()
                    .filter(|m| m.rank == 0 && m.is_feasible())
                    .map(|m| b.normalise(&m.objectives)),
            );
        }
        let front_size = self
            .population
            .iter()
            .filter(|m| m.rank == 0 && m.is_feasible())
            .count();
        GenerationStats {
            generation: self.generation,
            evaluated,
            front_size,
            feasible: feasible().count(),
            hypervolume: self.work.hypervolume.compute(hv_points, HV_REFERENCE),
            best_accuracy: feasible().map(|m| m.objectives.accuracy).reduce(f64::max),
            best_latency: feasible().map(|m| m.objectives.latency).reduce(f64::min),
            best_params: feasible().map(|m| m.objectives.params).reduce(f64::max),
        }
    }

    fn initial_population(&mut self) -> Vec<Genome> {
        let mu = self.config.population;
        let choices = self.problem.choice_counts();
        if self
            .problem
            .space_size()
            .is_some_and(|s| s <= SMALL_SPACE_FACTOR * mu as u128)
        {
            // A small space: draw without replacement from all of it, rather than rejection
            // sampling that slows to a crawl as the space runs out.
            let mut all = enumerate(choices);
            for i in 0..all.len().min(mu) {
                let j = i + self.rng.index(all.len() - i);
                all.swap(i, j);
            }
            all.truncate(mu);
            return all;
        }
        let work = &mut self.work;
        work.seen.reset(choices.len(), mu);
        let mut batch = Vec::with_capacity(mu);
        let budget = mu.saturating_mul(ATTEMPTS_PER_CHILD);
        for _ in 0..budget {
            if batch.len() == mu {
                break;
            }
            fill_random(&mut self.rng, choices, &mut work.first);
            if work.seen.insert(&work.first) {
                batch.push(work.first.clone());
            }
        }
        batch
    }

    fn offspring(&mut self) -> Vec<Genome> {
        let lambda = self.config.offspring_count();
        let choices = self.problem.choice_counts();
        let work = &mut self.work;
        work.seen
            .reset(choices.len(), self.population.len() + lambda);
        let mut known = 0u128;
        for m in &self.population {
            known += u128::from(work.seen.insert(&m.genome));
        }
        if let Some(space) = self.problem.space_size() {
            let unseen = space.saturating_sub(known);
            if unseen <= lambda as u128 {
                // Every remaining genome fits in one batch: hand them all out (in lexicographic
                // order) instead of searching for them at random.
                return enumerate(choices)
                    .into_iter()
                    .filter(|g| work.seen.insert(g))
                    .collect();
            }
        }
        let (first, second) = (&mut work.first, &mut work.second);
        let mut batch = Vec::with_capacity(lambda);
        let budget = lambda.saturating_mul(ATTEMPTS_PER_CHILD);
        let mut tries = 0;
        while batch.len() < lambda && tries < budget {
            let a = tournament(&mut self.rng, &self.population);
            let b = tournament(&mut self.rng, &self.population);
            first.clear();
            first.extend_from_slice(&self.population[a].genome);
            second.clear();
            second.extend_from_slice(&self.population[b].genome);
            if self.rng.chance(self.config.crossover_prob) {
                uniform_crossover(&mut self.rng, first, second);
            }
            for child in [&mut *first, &mut *second] {
                if batch.len() == lambda {
                    break;
                }
                tries += 1;
                mutate(&mut self.rng, child, choices, self.mutation_prob);
                if work.seen.insert(child) {
                    batch.push(child.clone());
                }
            }
        }
        // Variation keeps reproducing known genomes (a small or converged space): top up with
        // random unseen ones, still bounded.
        tries = 0;
        while batch.len() < lambda && tries < budget {
            tries += 1;
            fill_random(&mut self.rng, choices, first);
            if work.seen.insert(first) {
                batch.push(first.clone());
            }
        }
        batch
    }

    /// Everything needed to continue this search elsewhere, bit-identically.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            problem: self.problem.clone(),
            config: self.config.clone(),
            generation: self.generation,
            population: self.population.clone(),
            pending: self.pending.clone(),
            rng: self.rng.state(),
            history: self.history.clone(),
        }
    }

    /// Completed generations (1 once the initial population is told).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Whether every configured generation has been told.
    pub fn is_done(&self) -> bool {
        self.generation >= self.config.generations
    }

    /// The current population, by rank, with objectives, rank and crowding.
    pub fn population(&self) -> &[Member] {
        &self.population
    }

    /// The feasible first front: the search's current answer. Empty when no member is
    /// feasible.
    pub fn front(&self) -> Vec<&Member> {
        self.population
            .iter()
            .filter(|m| m.rank == 0 && m.is_feasible())
            .collect()
    }

    /// Statistics of every completed generation, oldest first.
    pub fn history(&self) -> &[GenerationStats] {
        &self.history
    }

    /// The batch handed out by `ask` and not yet told, if any.
    pub fn pending(&self) -> Option<&[Genome]> {
        self.pending.as_deref()
    }

    /// The search's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The problem's shape.
    pub fn problem(&self) -> &ProblemSize {
        &self.problem
    }
}

/// Binary tournament: two distinct members at random, the lower rank wins, then the larger
/// crowding distance, then the first drawn.
fn tournament(rng: &mut Rng, population: &[Member]) -> usize {
    let n = population.len();
    let i = rng.index(n);
    if n < 2 {
        return i;
    }
    let mut j = rng.index(n - 1);
    if j >= i {
        j += 1;
    }
    let (a, b) = (&population[i], &population[j]);
    if a.rank != b.rank {
        if a.rank < b.rank { i } else { j }
    } else if b.crowding > a.crowding {
        j
    } else {
        i
    }
}

/// Every genome of a small space, in lexicographic order.
fn enumerate(choices: &[u16]) -> Vec<Genome> {
    let mut out = Vec::new();
    let mut g = vec![0u8; choices.len()];
    loop {
        out.push(g.clone());
        // Odometer increment, last layer fastest.
        let mut l = choices.len();
        loop {
            if l == 0 {
                return out;
            }
            l -= 1;
            if u16::from(g[l]) + 1 < choices[l] {
                g[l] += 1;
                break;
            }
            g[l] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerate_small_space() {
        let all = enumerate(&[2, 3]);
        assert_eq!(
            all,
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 1],
                vec![1, 2]
            ]
        );
        assert_eq!(enumerate(&[1]), vec![vec![0]]);
    }

    #[test]
    fn config_validation_names_the_field() {
        let p = ProblemSize::uniform(3, 4).unwrap();
        let bad = [
            Config {
                population: 3,
                ..Config::new(8, 2, 0)
            },
            Config {
                population: MAX_POPULATION + 1,
                ..Config::new(8, 2, 0)
            },
            Config {
                offspring: Some(0),
                ..Config::new(8, 2, 0)
            },
            Config::new(8, 0, 0),
            Config {
                crossover_prob: 1.5,
                ..Config::new(8, 2, 0)
            },
            Config {
                crossover_prob: f64::NAN,
                ..Config::new(8, 2, 0)
            },
            Config {
                mutation_prob: Some(-0.1),
                ..Config::new(8, 2, 0)
            },
            Config {
                weights: Weights {
                    accuracy: 1.0,
                    latency: 0.0,
                    params: 1.0,
                },
                ..Config::new(8, 2, 0)
            },
            Config {
                constraints: Constraints {
                    max_latency: Some(-1.0),
                    ..Default::default()
                },
                ..Config::new(8, 2, 0)
            },
            Config {
                bounds: Some(Bounds {
                    ideal: [0.0; 3],
                    nadir: [1.0; 3],
                }),
                ..Config::new(8, 2, 0)
            },
        ];
        for c in bad {
            assert!(
                matches!(
                    Engine::new(p.clone(), c.clone()),
                    Err(SearchError::InvalidConfig { .. })
                ),
                "{c:?}"
            );
        }
    }

    #[test]
    fn tell_errors_leave_the_batch_outstanding() {
        let p = ProblemSize::uniform(3, 4).unwrap();
        let mut e = Engine::new(p, Config::new(6, 3, 9)).unwrap();
        assert_eq!(e.tell(vec![]), Err(SearchError::NothingAsked));
        let batch = e.ask();
        assert_eq!(batch.len(), 6);
        assert_eq!(e.ask(), batch);
        assert!(matches!(
            e.tell(vec![Objectives::new(1.0, 1.0, 1.0)]),
            Err(SearchError::LengthMismatch { .. })
        ));
        let mut objs = vec![Objectives::new(1.0, 1.0, 1.0); 6];
        objs[2].latency = f64::NAN;
        assert!(matches!(
            e.tell(objs),
            Err(SearchError::InvalidObjectives { index: 2, .. })
        ));
        assert_eq!(e.pending(), Some(&batch[..]));
        e.tell(vec![Objectives::new(1.0, 1.0, 1.0); 6]).unwrap();
        assert_eq!(e.generation(), 1);
    }

    #[test]
    fn macs_constraint_needs_macs() {
        let p = ProblemSize::uniform(3, 4).unwrap();
        let c = Config {
            constraints: Constraints {
                max_macs: Some(10.0),
                ..Default::default()
            },
            ..Config::new(4, 2, 1)
        };
        let mut e = Engine::new(p, c).unwrap();
        let n = e.ask().len();
        assert!(e.tell(vec![Objectives::new(1.0, 1.0, 1.0); n]).is_err());
        e.tell(vec![Objectives::new(1.0, 1.0, 1.0).with_macs(5.0); n])
            .unwrap();
    }

    #[test]
    fn tiny_space_is_enumerated_and_exhausts_gracefully() {
        let p = ProblemSize::uniform(2, 2).unwrap();
        let mut e = Engine::new(p, Config::new(8, 3, 5)).unwrap();
        let first = e.ask();
        assert_eq!(first.len(), 4);
        e.tell(vec![Objectives::new(1.0, 1.0, 1.0); 4]).unwrap();
        // Every genome is in the population: nothing new to ask.
        let second = e.ask();
        assert!(second.is_empty());
        e.tell(vec![]).unwrap();
        assert_eq!(e.generation(), 2);
    }

    #[test]
    fn small_spaces_are_sampled_without_replacement_then_exhausted() {
        // 3 * 2 * 2 = 12 genomes, population 5, offspring 4.
        let p = ProblemSize::per_layer(vec![3, 2, 2]).unwrap();
        let c = Config {
            offspring: Some(4),
            ..Config::new(5, 30, 11)
        };
        let mut e = Engine::new(p.clone(), c).unwrap();
        let mut first = true;
        while !e.is_done() {
            let population: std::collections::HashSet<Genome> =
                e.population().iter().map(|m| m.genome.clone()).collect();
            let batch = e.ask();
            let distinct: std::collections::HashSet<&Genome> = batch.iter().collect();
            assert_eq!(distinct.len(), batch.len());
            assert_eq!(batch.len(), if first { 5 } else { 4 });
            for g in &batch {
                p.check(g).unwrap();
                assert!(!population.contains(g));
            }
            first = false;
            let objs = batch
                .iter()
                .map(|g| {
                    let s = f64::from(g[0] + g[1] + g[2]);
                    Objectives::new(s, s, -s)
                })
                .collect();
            e.tell(objs).unwrap();
        }
    }

    #[test]
    fn one_genome_space_terminates() {
        let p = ProblemSize::uniform(crate::MAX_LAYERS, 1).unwrap();
        let mut e = Engine::new(p, Config::new(MAX_POPULATION, 3, 0)).unwrap();
        while !e.is_done() {
            let n = e.ask().len();
            e.tell(vec![Objectives::new(1.0, 1.0, 1.0); n]).unwrap();
        }
        assert_eq!(e.population().len(), 1);
    }

    #[test]
    fn infeasible_rank_after_feasible_by_violation() {
        let c = Constraints {
            max_latency: Some(10.0),
            ..Default::default()
        };
        let objs = [
            Objectives::new(70.0, 12.0, 1.0), // violation 0.2
            Objectives::new(60.0, 5.0, 1.0),  // feasible, dominated by 2
            Objectives::new(65.0, 4.0, 1.0),  // feasible, rank 0
            Objectives::new(90.0, 11.0, 9.0), // violation 0.1
            Objectives::new(50.0, 12.0, 1.0), // violation 0.2 (same as 0)
        ];
        let s = survive(&objs, &c, &Weights::default(), 3).unwrap();
        assert_eq!(s.ranks, [3, 1, 0, 2, 3]);
        assert_eq!(s.survivors, [2, 1, 3]);
    }
}
