//! What an evaluated architecture is judged by, and the caller's preferences over it.

use serde::{Deserialize, Serialize};

use crate::SearchError;

/// The three objectives of one architecture, plus what constraints may need beyond them.
///
/// Accuracy is maximised, latency minimised, and params **maximised**: MoGA's deliberate
/// choice, since at equal latency more parameters mean more capacity. `macs` only matters when
/// [`Constraints::max_macs`] is set; it is not an objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objectives {
    /// Top-1 accuracy (any unit, higher is better).
    pub accuracy: f64,
    /// Latency (any unit, lower is better).
    pub latency: f64,
    /// Parameter count (any unit, higher is better).
    pub params: f64,
    /// Multiply-accumulates, needed only for a MACs constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<f64>,
}

impl Objectives {
    /// Objectives without a MACs value.
    pub fn new(accuracy: f64, latency: f64, params: f64) -> Self {
        Self {
            accuracy,
            latency,
            params,
            macs: None,
        }
    }

    /// The same objectives carrying a MACs value for a MACs constraint.
    pub fn with_macs(mut self, macs: f64) -> Self {
        self.macs = Some(macs);
        self
    }

    /// The minimisation vector the sorting and crowding code works on: (-accuracy, latency,
    /// -params). `+ 0.0` keeps `-0.0` out, so ties sort the same whatever the sign of zero.
    pub fn to_minimisation(&self) -> [f64; 3] {
        [-self.accuracy + 0.0, self.latency + 0.0, -self.params + 0.0]
    }

    pub(crate) fn check(&self, needs_macs: bool) -> Result<(), String> {
        for (name, v) in [
            ("accuracy", self.accuracy),
            ("latency", self.latency),
            ("params", self.params),
        ] {
            if !v.is_finite() {
                return Err(format!("{name} is not finite ({v})"));
            }
        }
        match self.macs {
            Some(m) if !m.is_finite() => Err(format!("macs is not finite ({m})")),
            None if needs_macs => Err("macs is missing but a MACs constraint is set".into()),
            _ => Ok(()),
        }
    }
}

/// Relative importance of the objectives in the crowding distance (MoGA's 2:2:1 by default).
///
/// Only ratios matter: weights are normalised to sum to 1 before use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// Weight of accuracy.
    pub accuracy: f64,
    /// Weight of latency.
    pub latency: f64,
    /// Weight of params.
    pub params: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            accuracy: 2.0,
            latency: 2.0,
            params: 1.0,
        }
    }
}

impl Weights {
    /// Weights normalised to sum to 1, in (accuracy, latency, params) order.
    ///
    /// A zero or negative weight would let crowding ignore or invert an objective, and a
    /// non-finite one would poison every distance, so both are refused.
    pub fn normalised(&self) -> Result<[f64; 3], SearchError> {
        let fields = [
            ("weights.accuracy", self.accuracy),
            ("weights.latency", self.latency),
            ("weights.params", self.params),
        ];
        for (field, w) in fields {
            if !(w.is_finite() && w > 0.0) {
                return Err(SearchError::InvalidConfig {
                    field,
                    reason: format!("must be finite and > 0, got {w}"),
                });
            }
        }
        let sum = self.accuracy + self.latency + self.params;
        if !sum.is_finite() {
            return Err(SearchError::InvalidConfig {
                field: "weights",
                reason: "the weights' sum overflows".into(),
            });
        }
        Ok([self.accuracy / sum, self.latency / sum, self.params / sum])
    }
}

/// Upper limits an architecture should respect, applied by constraint-domination (Deb 2000):
/// feasible beats infeasible, the smaller total normalised violation wins among infeasible, and
/// Pareto rank then crowding decide among feasible.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Constraints {
    /// Highest acceptable latency (same unit as [`Objectives::latency`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<f64>,
    /// Highest acceptable params (params are maximised, so this caps the search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_params: Option<f64>,
    /// Highest acceptable MACs; every objective set must then carry `macs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_macs: Option<f64>,
}

impl Constraints {
    /// Checks every limit is finite and positive, since violations are divided by it.
    pub fn validate(&self) -> Result<(), SearchError> {
        let fields = [
            ("constraints.max_latency", self.max_latency),
            ("constraints.max_params", self.max_params),
            ("constraints.max_macs", self.max_macs),
        ];
        for (field, limit) in fields {
            if let Some(v) = limit.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(SearchError::InvalidConfig {
                    field,
                    reason: format!("must be finite and > 0, got {v}"),
                });
            }
        }
        Ok(())
    }

    /// Total violation, each term relative to its limit so that milliseconds, millions of
    /// params and MACs add up on one scale; 0 means feasible.
    ///
    /// A missing `macs` counts as no violation (`tell` refuses it before this is reached).
    pub fn violation(&self, o: &Objectives) -> f64 {
        let mut total = 0.0;
        if let Some(limit) = self.max_latency {
            total += excess(o.latency, limit);
        }
        if let Some(limit) = self.max_params {
            total += excess(o.params, limit);
        }
        if let (Some(limit), Some(macs)) = (self.max_macs, o.macs) {
            total += excess(macs, limit);
        }
        total
    }
}

fn excess(value: f64, limit: f64) -> f64 {
    if value > limit {
        (value - limit) / limit
    } else {
        0.0
    }
}

/// Ideal and nadir objective values, in (accuracy, latency, params) order and the caller's
/// units, that map objectives into the unit cube for the hypervolume.
///
/// `ideal` holds the best values (highest accuracy, lowest latency, highest params), `nadir` the
/// worst. A point at the ideal maps to (0, 0, 0) and at the nadir to (1, 1, 1); the reference
/// point for the hypervolume is (1.1, 1.1, 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Best value of each objective.
    pub ideal: [f64; 3],
    /// Worst value of each objective.
    pub nadir: [f64; 3],
}

impl Bounds {
    /// Checks that the bounds are finite and that ideal is strictly better than nadir, so the
    /// normalisation neither divides by zero nor flips an objective.
    pub fn validate(&self) -> Result<(), SearchError> {
        let all_finite = self.ideal.iter().chain(&self.nadir).all(|v| v.is_finite());
        let ordered = self.ideal[0] > self.nadir[0]
            && self.ideal[1] < self.nadir[1]
            && self.ideal[2] > self.nadir[2];
        if all_finite && ordered {
            Ok(())
        } else {
            Err(SearchError::InvalidConfig {
                field: "bounds",
                reason: format!(
                    "need finite values with ideal better than nadir in every objective \
                     (accuracy and params higher, latency lower), got ideal {:?} nadir {:?}",
                    self.ideal, self.nadir
                ),
            })
        }
    }

    /// Normalised minimisation coordinates: 0 at the ideal, 1 at the nadir.
    ///
    /// Written as `(ideal - acc) / (ideal - nadir)` etc., the same operations as the shared
    /// benchmark's `synth.normalise`, so the synthetic problem's values match it to the bit.
    /// An objective whose ideal equals its nadir maps to 0.
    pub fn normalise(&self, o: &Objectives) -> [f64; 3] {
        let [ia, il, ip] = self.ideal;
        let [na, nl, np] = self.nadir;
        [
            ratio(ia - o.accuracy, ia - na),
            ratio(o.latency - il, nl - il),
            ratio(ip - o.params, ip - np),
        ]
    }

    /// Ideal and nadir of a set of objectives (`None` when empty).
    pub fn of<'a>(objectives: impl IntoIterator<Item = &'a Objectives>) -> Option<Bounds> {
        let mut it = objectives.into_iter();
        let first = it.next()?;
        let mut b = Bounds {
            ideal: [first.accuracy, first.latency, first.params],
            nadir: [first.accuracy, first.latency, first.params],
        };
        for o in it {
            b.ideal = [
                b.ideal[0].max(o.accuracy),
                b.ideal[1].min(o.latency),
                b.ideal[2].max(o.params),
            ];
            b.nadir = [
                b.nadir[0].min(o.accuracy),
                b.nadir[1].max(o.latency),
                b.nadir[2].min(o.params),
            ];
        }
        Some(b)
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_weights_normalise_to_moga() {
        assert_eq!(Weights::default().normalised().unwrap(), [0.4, 0.4, 0.2]);
    }

    #[test]
    fn weights_must_be_positive_and_finite() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let w = Weights {
                accuracy: 1.0,
                latency: bad,
                params: 1.0,
            };
            assert!(w.normalised().is_err(), "{bad}");
        }
        let w = Weights {
            accuracy: f64::MAX,
            latency: f64::MAX,
            params: 1.0,
        };
        assert!(w.normalised().is_err());
    }

    #[test]
    fn violation_is_relative_and_summed() {
        let c = Constraints {
            max_latency: Some(10.0),
            max_params: Some(4.0),
            max_macs: Some(100.0),
        };
        c.validate().unwrap();
        let o = Objectives::new(70.0, 15.0, 5.0).with_macs(50.0);
        assert_eq!(c.violation(&o), 0.5 + 0.25);
        assert_eq!(
            c.violation(&Objectives::new(70.0, 10.0, 4.0).with_macs(100.0)),
            0.0
        );
        assert!(
            Constraints {
                max_latency: Some(0.0),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Constraints {
                max_macs: Some(f64::NAN),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn bounds_normalise_and_validate() {
        let b = Bounds {
            ideal: [80.0, 10.0, 8.0],
            nadir: [60.0, 30.0, 4.0],
        };
        b.validate().unwrap();
        assert_eq!(
            b.normalise(&Objectives::new(80.0, 10.0, 8.0)),
            [0.0, 0.0, 0.0]
        );
        assert_eq!(
            b.normalise(&Objectives::new(60.0, 30.0, 4.0)),
            [1.0, 1.0, 1.0]
        );
        let flipped = Bounds {
            ideal: [60.0, 10.0, 8.0],
            nadir: [80.0, 30.0, 4.0],
        };
        assert!(flipped.validate().is_err());
    }
}
