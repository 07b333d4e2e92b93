//! Architectures: one choice per searchable layer, written as hex text (`453969358533aa`), as
//! JSON (`{"space": "moga-mbv3", "choices": [4, 5, ...]}`), or by a reference name (`MoGA-A`).
//! Reference networks outside the grid (MobileNetV3-Large) carry explicit channels per layer.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::block::{Activation, SqueezeExcite};
use crate::space::{SearchSpace, SpaceError};

/// Why an architecture was refused. Messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    #[error("the architecture belongs to space `{given}`, not `{expected}`")]
    WrongSpace { given: String, expected: String },
    #[error("wrong length: {got} choices given, space `{space}` has {expected} searchable layers")]
    WrongLength {
        got: usize,
        expected: usize,
        space: String,
    },
    #[error(
        "choice out of range at layer {layer}: {choice} given, space `{space}` has choices 0..={max}"
    )]
    ChoiceOutOfRange {
        /// 1-based.
        layer: usize,
        choice: i64,
        max: usize,
        space: String,
    },
    #[error(
        "`{given}` is neither an architecture in hex form (one hex digit per layer) nor a reference name of space `{space}` (known: {})",
        known.join(", ")
    )]
    UnknownReference {
        given: String,
        space: String,
        known: Vec<String>,
    },
}

/// An architecture as a request gives it, before it is checked against a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArchSpec {
    /// Hex text form or a reference name.
    Text(String),
    /// JSON form. `space` may be omitted where the request already names the space.
    Choices {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        space: Option<String>,
        choices: Vec<i64>,
    },
}

impl From<&str> for ArchSpec {
    fn from(s: &str) -> Self {
        Self::Text(s.to_string())
    }
}

/// One searchable layer of a network outside the choice grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplicitLayer {
    pub hidden: u32,
    pub kernel: u32,
    pub se: Option<SqueezeExcite>,
}

/// The layers of a resolved architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchLayers {
    /// One choice index per layer.
    Grid(Vec<u8>),
    /// Explicit channels per layer (reference networks outside the space).
    Explicit(Vec<ExplicitLayer>),
}

/// An architecture checked against its space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    space: String,
    name: Option<String>,
    layers: ArchLayers,
}

impl Architecture {
    /// A grid architecture from choice indices, checked against the space.
    pub fn from_choices(space: &SearchSpace, choices: &[i64]) -> Result<Self, ArchError> {
        let n = space.layers().len();
        if choices.len() != n {
            return Err(ArchError::WrongLength {
                got: choices.len(),
                expected: n,
                space: space.name().to_string(),
            });
        }
        let max = space.choices().len() - 1;
        let mut out = Vec::with_capacity(n);
        for (i, &c) in choices.iter().enumerate() {
            if c < 0 || c as usize > max {
                return Err(ArchError::ChoiceOutOfRange {
                    layer: i + 1,
                    choice: c,
                    max,
                    space: space.name().to_string(),
                });
            }
            out.push(c as u8);
        }
        let name = space.references().name_of(&out).map(str::to_string);
        Ok(Self {
            space: space.name().to_string(),
            name,
            layers: ArchLayers::Grid(out),
        })
    }

    /// Parses the hex text form: one lowercase (or uppercase) hex digit per layer.
    pub fn from_hex(space: &SearchSpace, text: &str) -> Result<Self, ArchError> {
        let choices: Vec<i64> = text
            .chars()
            .map(|c| c.to_digit(16).map_or(-1, i64::from))
            .collect();
        Self::from_choices(space, &choices)
    }

    /// Resolves any accepted form against `space`.
    pub fn resolve(space: &SearchSpace, spec: &ArchSpec) -> Result<Self, ArchError> {
        match spec {
            ArchSpec::Choices {
                space: Some(given), ..
            } if given != space.name() => Err(ArchError::WrongSpace {
                given: given.clone(),
                expected: space.name().to_string(),
            }),
            ArchSpec::Choices { choices, .. } => Self::from_choices(space, choices),
            ArchSpec::Text(text) => {
                let text = text.trim();
                if !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Self::from_hex(space, text);
                }
                space
                    .references()
                    .get(space, text)
                    .ok_or_else(|| ArchError::UnknownReference {
                        given: text.to_string(),
                        space: space.name().to_string(),
                        known: space.references().names(),
                    })
            }
        }
    }

    pub fn space(&self) -> &str {
        &self.space
    }

    /// The reference name, for published networks.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn layers(&self) -> &ArchLayers {
        &self.layers
    }

    /// Choice indices, for grid architectures.
    pub fn choices(&self) -> Option<&[u8]> {
        match &self.layers {
            ArchLayers::Grid(c) => Some(c),
            ArchLayers::Explicit(_) => None,
        }
    }
}

/// Hex form for grid architectures, the reference name for explicit ones.
impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layers {
            ArchLayers::Grid(choices) => {
                for &c in choices {
                    write!(f, "{c:x}")?;
                }
                Ok(())
            }
            ArchLayers::Explicit(_) => f.write_str(self.name.as_deref().unwrap_or("explicit")),
        }
    }
}

/// The published networks of a space, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Keyed by the canonical name (e.g. `MoGA-A`).
    archs: BTreeMap<String, ArchLayers>,
}

#[derive(Deserialize)]
struct ReferencesDoc {
    space: String,
    archs: BTreeMap<String, Vec<(u32, u32, u8)>>,
    #[serde(default)]
    outside_the_space: BTreeMap<String, ExplicitNetDoc>,
}

#[derive(Deserialize)]
struct ExplicitNetDoc {
    layers: Vec<ExplicitLayerDoc>,
    /// Inner activation of the SE modules; MobileNetV3 uses ReLU whatever the block's act.
    #[serde(default = "relu")]
    se_act: Activation,
}

fn relu() -> Activation {
    Activation::Relu
}

#[derive(Deserialize)]
struct ExplicitLayerDoc {
    hidden: u32,
    kernel: u32,
    se: bool,
    #[serde(default)]
    squeeze: Option<u32>,
}

impl References {
    /// Parses a `reference-archs.json` document for `space`: grid networks as (expansion,
    /// kernel, se) triples per layer, others as explicit channels.
    pub fn from_json(text: &str, space: &SearchSpace) -> Result<Self, SpaceError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let doc: ReferencesDoc =
            serde_path_to_error::deserialize(de).map_err(|e| SpaceError::Json {
                field: e.path().to_string(),
                reason: e.inner().to_string(),
            })?;
        let bad = |field: String, reason: String| SpaceError::Invalid { field, reason };
        if doc.space != space.name() {
            return Err(bad(
                "space".into(),
                format!("references are for `{}`, not `{}`", doc.space, space.name()),
            ));
        }
        let n = space.layers().len();
        let mut archs = BTreeMap::new();
        for (name, triples) in doc.archs {
            if triples.len() != n {
                return Err(bad(
                    format!("archs.{name}"),
                    format!("{} layers given, the space has {n}", triples.len()),
                ));
            }
            let mut choices = Vec::with_capacity(n);
            for (i, &(e, k, se)) in triples.iter().enumerate() {
                let c = space
                    .choices()
                    .iter()
                    .find(|c| c.expansion == e && c.kernel == k && c.se == (se != 0))
                    .ok_or_else(|| {
                        bad(
                            format!("archs.{name}[{i}]"),
                            format!(
                                "(expansion {e}, kernel {k}, se {se}) is not a choice of the space"
                            ),
                        )
                    })?;
                choices.push(c.c as u8);
            }
            archs.insert(name, ArchLayers::Grid(choices));
        }
        for (name, net) in doc.outside_the_space {
            if net.layers.len() != n {
                return Err(bad(
                    format!("outside_the_space.{name}.layers"),
                    format!("{} layers given, the space has {n}", net.layers.len()),
                ));
            }
            let layers = net
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let field = format!("outside_the_space.{name}.layers[{i}]");
                    if l.hidden == 0 || l.kernel % 2 == 0 {
                        return Err(bad(field, "hidden must be positive and kernel odd".into()));
                    }
                    let se = match (l.se, l.squeeze) {
                        (false, _) => None,
                        (true, Some(squeeze)) if squeeze > 0 => Some(SqueezeExcite {
                            squeeze,
                            act: net.se_act,
                        }),
                        (true, _) => {
                            return Err(bad(field, "se needs a positive `squeeze`".into()));
                        }
                    };
                    Ok(ExplicitLayer {
                        hidden: l.hidden,
                        kernel: l.kernel,
                        se,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            archs.insert(name, ArchLayers::Explicit(layers));
        }
        Ok(Self { archs })
    }

    /// Canonical names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.archs.keys().cloned().collect()
    }

    /// Looks a reference up by name, ignoring case.
    pub fn get(&self, space: &SearchSpace, name: &str) -> Option<Architecture> {
        let (canonical, layers) = self
            .archs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(Architecture {
            space: space.name().to_string(),
            name: Some(canonical.clone()),
            layers: layers.clone(),
        })
    }

    /// The name of the reference with these choices, if one is.
    pub fn name_of(&self, choices: &[u8]) -> Option<&str> {
        self.archs.iter().find_map(|(n, l)| match l {
            ArchLayers::Grid(c) if c == choices => Some(n.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_and_json_forms_round_trip(choices in prop::collection::vec(0i64..12, 14)) {
            let s = space();
            let a = s.resolve(&ArchSpec::Choices { space: Some("moga-mbv3".into()), choices: choices.clone() }).unwrap();
            let hex = a.to_string();
            prop_assert_eq!(hex.len(), 14);
            prop_assert!(hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
            let again = s.resolve(&ArchSpec::Text(hex)).unwrap();
            prop_assert_eq!(&again, &a);
            let back: Vec<i64> = again.choices().unwrap().iter().map(|&c| i64::from(c)).collect();
            prop_assert_eq!(back, choices);
        }

        #[test]
        fn every_architecture_expands_to_the_same_block_layout(choices in prop::collection::vec(0i64..12, 14)) {
            let s = space();
            let a = s.resolve(&ArchSpec::Choices { space: None, choices }).unwrap();
            let blocks = s.expand(&a);
            prop_assert_eq!(blocks.len(), 20);
            // Shapes chain from the 224x224x3 input to the 1000 logits.
            prop_assert_eq!(blocks[0].input, crate::Shape::new(224, 224, 3));
            for w in blocks.windows(2) {
                prop_assert_eq!(w[0].output, w[1].input);
            }
            prop_assert_eq!(blocks[19].output, crate::Shape::new(1, 1, 1000));
            let distinct: std::collections::BTreeSet<_> =
                s.distinct_blocks().into_iter().map(|b| b.block.key).collect();
            prop_assert!(blocks.iter().all(|b| distinct.contains(&b.key)));
        }
    }

    fn space() -> SearchSpace {
        SearchSpace::moga_mbv3()
    }

    #[test]
    fn published_hex_forms_match_the_reference_layers() {
        let s = space();
        for (name, hex) in [
            ("MoGA-A", "453969358533aa"),
            ("MoGA-B", "005049a0b51bb9"),
            ("MoGA-C", "101011a1139999"),
        ] {
            let by_name = s.resolve(&name.into()).unwrap();
            assert_eq!(by_name.to_string(), hex, "{name}");
            let by_hex = s.resolve(&hex.into()).unwrap();
            assert_eq!(by_hex.name(), Some(name));
            assert_eq!(by_hex, by_name);
        }
    }

    #[test]
    fn names_are_case_insensitive_and_canonicalised() {
        let a = space().resolve(&"moga-a".into()).unwrap();
        assert_eq!(a.name(), Some("MoGA-A"));
        let m = space().resolve(&"mobilenetv3-large".into()).unwrap();
        assert_eq!(m.to_string(), "MobileNetV3-Large");
        assert!(m.choices().is_none());
    }

    #[test]
    fn json_form_is_checked() {
        let s = space();
        let ok: ArchSpec = serde_json::from_str(
            r#"{"space":"moga-mbv3","choices":[4,5,3,9,6,9,3,5,8,5,3,3,10,10]}"#,
        )
        .unwrap();
        assert_eq!(s.resolve(&ok).unwrap().name(), Some("MoGA-A"));
        let short: ArchSpec = serde_json::from_str(r#"{"choices":[1,2,3]}"#).unwrap();
        assert!(matches!(
            s.resolve(&short),
            Err(ArchError::WrongLength {
                got: 3,
                expected: 14,
                ..
            })
        ));
        let big: ArchSpec =
            serde_json::from_str(r#"{"choices":[0,0,0,0,0,0,0,0,0,0,0,0,0,12]}"#).unwrap();
        let e = s.resolve(&big).unwrap_err();
        assert!(matches!(
            e,
            ArchError::ChoiceOutOfRange {
                layer: 14,
                choice: 12,
                max: 11,
                ..
            }
        ));
        assert!(e.to_string().contains("layer 14"));
        let other: ArchSpec = serde_json::from_str(r#"{"space":"fbnet","choices":[0]}"#).unwrap();
        assert!(matches!(
            s.resolve(&other),
            Err(ArchError::WrongSpace { .. })
        ));
    }

    #[test]
    fn bad_text_gets_a_useful_error() {
        let s = space();
        assert!(matches!(
            s.resolve(&"45396935853".into()),
            Err(ArchError::WrongLength { got: 11, .. })
        ));
        assert!(matches!(
            s.resolve(&"453969358533ac".into()),
            Err(ArchError::ChoiceOutOfRange {
                layer: 14,
                choice: 12,
                ..
            })
        ));
        let e = s.resolve(&"MoGA-Z".into()).unwrap_err();
        assert!(e.to_string().contains("MoGA-A, MoGA-B"), "{e}");
    }

    #[test]
    fn uppercase_hex_is_accepted_and_printed_lowercase() {
        let a = space().resolve(&"453969358533AA".into()).unwrap();
        assert_eq!(a.to_string(), "453969358533aa");
    }
}
