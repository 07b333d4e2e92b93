//! Search spaces: the JSON spec, its validation, and what a space derives from it (its
//! layers' shapes, the blocks of an architecture, the distinct blocks of the whole space).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::arch::{ArchError, ArchSpec, Architecture, ExplicitLayer, References};
use crate::block::{Activation, Block, BlockKey, BlockOp, Shape, SqueezeExcite, conv_out};

/// The built-in default space.
pub const MOGA_MBV3: &str = "moga-mbv3";

const MOGA_MBV3_SPEC: &str = include_str!("../data/moga-mbv3.json");
const MOGA_MBV3_REFERENCES: &str = include_str!("../data/reference-archs.json");

/// The documents (spec, references) of the spaces that ship with gpulut, as registered.
pub const BUILTIN_DOCUMENTS: &[(&str, Option<&str>)] =
    &[(MOGA_MBV3_SPEC, Some(MOGA_MBV3_REFERENCES))];

/// Why a space spec was refused. `field` is a path into the document such as `layers[3].cin`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpaceError {
    #[error("invalid search-space JSON at `{field}`: {reason}")]
    Json { field: String, reason: String },
    #[error("invalid search space at `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpaceError {
    SpaceError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The search-space document as users write it (see `data/moga-mbv3.json`). Free-text fields
/// (`summary`, `source`, `facts`, `counting_conventions`, notes) are kept so a space can be
/// served back as it was registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceSpec {
    pub name: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    pub input: InputSpec,
    pub stem: Vec<FixedOpSpec>,
    pub layers: Vec<LayerSpec>,
    pub block: BlockSpec,
    pub choices: ChoicesSpec,
    pub head: Vec<FixedOpSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting_conventions: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    pub channels: u32,
    pub height: u32,
    pub width: u32,
}

fn default_stride() -> u32 {
    1
}

fn default_act() -> Activation {
    Activation::None
}

/// A fixed (not searched) part of the network: stem or head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FixedOpSpec {
    Conv {
        kernel: u32,
        #[serde(default = "default_stride")]
        stride: u32,
        cin: u32,
        cout: u32,
        #[serde(default)]
        bn: bool,
        #[serde(default)]
        bias: bool,
        #[serde(default = "default_act")]
        act: Activation,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Dwsep {
        kernel: u32,
        #[serde(default = "default_stride")]
        stride: u32,
        cin: u32,
        cout: u32,
        act: Activation,
        #[serde(default)]
        residual: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    GlobalAvgPool,
    Fc {
        cin: u32,
        cout: u32,
        #[serde(default)]
        bias: bool,
    },
}

/// One searchable layer's fixed shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub cin: u32,
    pub cout: u32,
    pub stride: u32,
    pub act: Activation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSpec {
    pub kind: BlockKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<serde_json::Value>,
    pub se: SeSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    InvertedResidual,
}

/// Squeeze-excitation of the space's blocks: squeeze = hidden / reduction (integer division),
/// inner activation = the block's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeSpec {
    pub reduction: u32,
    #[serde(flatten)]
    pub notes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoicesSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expansion: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se: Option<Vec<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_rule: Option<String>,
    /// The authoritative list: choice `c` is `table[c]`.
    pub table: Vec<Choice>,
}

/// One candidate block for a searchable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub c: u32,
    pub kernel: u32,
    pub expansion: u32,
    pub se: bool,
}

/// Most choices a layer may have: the text form of an architecture spends one hex digit a layer.
pub const MAX_CHOICES: usize = 16;
/// Most searchable layers a space may have; keeps text forms and requests bounded.
pub const MAX_LAYERS: usize = 64;

/// A validated search space, ready to expand architectures. Construct with [`SearchSpace::from_json`]
/// or [`SearchSpace::builtin`].
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    spec: SpaceSpec,
    /// Input shape of each searchable layer, derived once.
    layer_inputs: Vec<Shape>,
    /// Every (layer, choice) block, row-major, built once: expanding architectures is the hot
    /// path of predictions and searches, and key formatting is its cost.
    grid: Vec<Block>,
    stem: Vec<Block>,
    head: Vec<Block>,
    references: References,
}

/// A distinct block of a space with where it occurs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpaceBlock {
    #[serde(flatten)]
    pub block: Block,
    /// `stem`, `choice` or `head`.
    pub part: BlockPart,
    /// For choice blocks: every (layer, choice) pair, 1-based layers, that expands to this block.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<LayerChoice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockPart {
    Stem,
    Choice,
    Head,
}

impl BlockPart {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stem => "stem",
            Self::Choice => "choice",
            Self::Head => "head",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerChoice {
    pub layer: u32,
    pub choice: u32,
}

/// Params, MACs and blocks of one architecture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Canonical text of the architecture: hex form, or the reference name for explicit networks.
    pub arch: String,
    /// The reference name when the architecture is a published one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<u8>>,
    pub params: u64,
    pub macs: u64,
    pub blocks: Vec<Block>,
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, SpaceError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| SpaceError::Json {
        field: e.path().to_string(),
        reason: e.inner().to_string(),
    })
}

impl SearchSpace {
    /// The spaces that ship with gpulut.
    pub fn builtins() -> Vec<SearchSpace> {
        BUILTIN_DOCUMENTS
            .iter()
            .map(|(spec, refs)| {
                Self::from_documents(spec, *refs).expect("the embedded space documents validate")
            })
            .collect()
    }

    /// A built-in space by name.
    pub fn builtin(name: &str) -> Option<SearchSpace> {
        Self::builtins().into_iter().find(|s| s.name() == name)
    }

    /// The MoGA space with its published reference networks.
    pub fn moga_mbv3() -> SearchSpace {
        Self::from_documents(MOGA_MBV3_SPEC, Some(MOGA_MBV3_REFERENCES))
            .expect("the embedded moga-mbv3 documents validate")
    }

    /// A space from its spec document and, optionally, its `reference-archs.json` document:
    /// the form in which spaces are registered and stored.
    pub fn from_documents(spec: &str, references: Option<&str>) -> Result<Self, SpaceError> {
        let space = Self::from_json(spec)?;
        match references {
            Some(r) => space.with_references_json(r),
            None => Ok(space),
        }
    }

    /// Parses and validates a spec.
    pub fn from_json(text: &str) -> Result<Self, SpaceError> {
        Self::from_spec(parse_json(text)?)
    }

    /// Validates a spec: names, sizes, kernels and strides, activations, that channels chain from
    /// the input through stem, layers and head, and that the choice table is well formed.
    pub fn from_spec(spec: SpaceSpec) -> Result<Self, SpaceError> {
        validate_name(&spec.name)?;
        let i = spec.input;
        if i.channels == 0 || i.height == 0 || i.width == 0 {
            return Err(invalid(
                "input",
                "channels, height and width must be positive",
            ));
        }
        if i.height > 4096 || i.width > 4096 || i.channels > 4096 {
            return Err(invalid("input", "at most 4096 in each dimension"));
        }
        if spec.layers.is_empty() {
            return Err(invalid(
                "layers",
                "a space needs at least one searchable layer",
            ));
        }
        if spec.layers.len() > MAX_LAYERS {
            return Err(invalid(
                "layers",
                format!(
                    "at most {MAX_LAYERS} searchable layers, got {}",
                    spec.layers.len()
                ),
            ));
        }
        if spec.block.se.reduction == 0 {
            return Err(invalid("block.se.reduction", "must be positive"));
        }
        validate_choices(&spec.choices)?;

        let mut shape = Shape::new(i.height, i.width, i.channels);
        for (n, op) in spec.stem.iter().enumerate() {
            shape = check_fixed(op, shape, &format!("stem[{n}]"))?;
        }
        let mut layer_inputs = Vec::with_capacity(spec.layers.len());
        for (n, l) in spec.layers.iter().enumerate() {
            let field = format!("layers[{n}]");
            if l.cin != shape.c {
                return Err(invalid(
                    format!("{field}.cin"),
                    format!(
                        "channels don't chain: the previous part gives {} channels, this layer takes {}",
                        shape.c, l.cin
                    ),
                ));
            }
            check_channels(l.cout, &format!("{field}.cout"))?;
            check_stride(l.stride, &format!("{field}.stride"))?;
            if l.act == Activation::None || l.act == Activation::Hsigmoid {
                return Err(invalid(
                    format!("{field}.act"),
                    format!("`{}` is not a block activation; use relu or hswish", l.act),
                ));
            }
            layer_inputs.push(shape);
            shape = Shape::new(
                conv_out(shape.h, l.stride),
                conv_out(shape.w, l.stride),
                l.cout,
            );
        }
        if spec.head.is_empty() {
            return Err(invalid("head", "a space needs a head"));
        }
        for (n, op) in spec.head.iter().enumerate() {
            shape = check_fixed(op, shape, &format!("head[{n}]"))?;
        }
        let mut space = Self {
            spec,
            layer_inputs,
            grid: Vec::new(),
            stem: Vec::new(),
            head: Vec::new(),
            references: References::default(),
        };
        let i = space.spec.input;
        space.stem = fixed_blocks(&space.spec.stem, Shape::new(i.height, i.width, i.channels));
        let last = space.spec.layers.len() - 1;
        let (l, s) = (space.spec.layers[last], space.layer_inputs[last]);
        let tail = Shape::new(conv_out(s.h, l.stride), conv_out(s.w, l.stride), l.cout);
        space.head = fixed_blocks(&space.spec.head, tail);
        space.grid = (0..space.spec.layers.len())
            .flat_map(|layer| {
                space
                    .choices()
                    .iter()
                    .map(|c| Block::new(space.choice_op(layer, c), space.layer_inputs[layer]))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(space)
    }

    /// The block of `choice` at searchable layer `layer` (0-based).
    pub fn choice_block(&self, layer: usize, choice: usize) -> &Block {
        &self.grid[layer * self.choices().len() + choice]
    }

    /// Adds the reference architectures of a `reference-archs.json` document.
    pub fn with_references_json(mut self, text: &str) -> Result<Self, SpaceError> {
        self.references = References::from_json(text, &self)?;
        Ok(self)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &SpaceSpec {
        &self.spec
    }

    pub fn layers(&self) -> &[LayerSpec] {
        &self.spec.layers
    }

    pub fn choices(&self) -> &[Choice] {
        &self.spec.choices.table
    }

    /// Input shape of searchable layer `layer` (0-based).
    pub fn layer_input(&self, layer: usize) -> Shape {
        self.layer_inputs[layer]
    }

    /// Number of architectures in the space, when it fits in a u128.
    pub fn size(&self) -> Option<u128> {
        let n = self.choices().len() as u128;
        (0..self.layers().len()).try_fold(1u128, |acc, _| acc.checked_mul(n))
    }

    pub fn references(&self) -> &References {
        &self.references
    }

    /// Resolves any accepted form of an architecture (hex text, JSON choices, reference name).
    pub fn resolve(&self, spec: &ArchSpec) -> Result<Architecture, ArchError> {
        Architecture::resolve(self, spec)
    }

    /// The concrete inverted-residual op of `choice` at searchable layer `layer` (0-based).
    pub fn choice_op(&self, layer: usize, choice: &Choice) -> BlockOp {
        let l = self.spec.layers[layer];
        let hidden = l.cin * choice.expansion;
        BlockOp::InvertedResidual {
            kernel: choice.kernel,
            stride: l.stride,
            cin: l.cin,
            hidden,
            cout: l.cout,
            se: choice.se.then(|| SqueezeExcite {
                squeeze: hidden / self.spec.block.se.reduction,
                act: l.act,
            }),
            act: l.act,
        }
    }

    fn explicit_op(&self, layer: usize, e: &ExplicitLayer) -> BlockOp {
        let l = self.spec.layers[layer];
        BlockOp::InvertedResidual {
            kernel: e.kernel,
            stride: l.stride,
            cin: l.cin,
            hidden: e.hidden,
            cout: l.cout,
            se: e.se,
            act: l.act,
        }
    }

    /// The fixed blocks before the searchable layers, in order.
    pub fn stem_blocks(&self) -> Vec<Block> {
        self.stem.clone()
    }

    /// The fixed blocks after the searchable layers, in order.
    pub fn head_blocks(&self) -> Vec<Block> {
        self.head.clone()
    }

    /// The stem blocks, borrowed.
    pub fn stem_block_refs(&self) -> &[Block] {
        &self.stem
    }

    /// The head blocks, borrowed.
    pub fn head_block_refs(&self) -> &[Block] {
        &self.head
    }

    /// The blocks of an architecture in execution order: stem, one per layer, head.
    pub fn expand(&self, arch: &Architecture) -> Vec<Block> {
        let mut blocks =
            Vec::with_capacity(self.stem.len() + self.spec.layers.len() + self.head.len());
        blocks.extend_from_slice(&self.stem);
        for layer in 0..self.spec.layers.len() {
            blocks.push(match arch.layers() {
                crate::arch::ArchLayers::Grid(choices) => self
                    .choice_block(layer, usize::from(choices[layer]))
                    .clone(),
                crate::arch::ArchLayers::Explicit(layers) => Block::new(
                    self.explicit_op(layer, &layers[layer]),
                    self.layer_inputs[layer],
                ),
            });
        }
        blocks.extend_from_slice(&self.head);
        blocks
    }

    /// Params, MACs and blocks of an architecture.
    pub fn analyze(&self, arch: &Architecture) -> Analysis {
        let blocks = self.expand(arch);
        Analysis {
            arch: arch.to_string(),
            name: arch.name().map(str::to_string),
            choices: arch.choices().map(<[u8]>::to_vec),
            params: blocks.iter().map(|b| b.params).sum(),
            macs: blocks.iter().map(|b| b.macs).sum(),
            blocks,
        }
    }

    /// Every distinct block of the space: the fixed stem and head parts, and each choice at each
    /// distinct layer shape once, with the (layer, choice) pairs that use it.
    pub fn distinct_blocks(&self) -> Vec<SpaceBlock> {
        let mut out: Vec<SpaceBlock> = Vec::new();
        let mut index: BTreeMap<BlockKey, usize> = BTreeMap::new();
        let mut push =
            |out: &mut Vec<SpaceBlock>, block: Block, part, at: Option<LayerChoice>| match index
                .get(&block.key)
            {
                Some(&i) => out[i].uses.extend(at),
                None => {
                    index.insert(block.key.clone(), out.len());
                    out.push(SpaceBlock {
                        block,
                        part,
                        uses: at.into_iter().collect(),
                    });
                }
            };
        for b in self.stem_blocks() {
            push(&mut out, b, BlockPart::Stem, None);
        }
        for layer in 0..self.spec.layers.len() {
            for choice in self.choices() {
                let block = self.choice_block(layer, choice.c as usize).clone();
                let at = LayerChoice {
                    layer: layer as u32 + 1,
                    choice: choice.c,
                };
                push(&mut out, block, BlockPart::Choice, Some(at));
            }
        }
        for b in self.head_blocks() {
            push(&mut out, b, BlockPart::Head, None);
        }
        out
    }
}

fn validate_name(name: &str) -> Result<(), SpaceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            "1-64 characters of a-z, 0-9, '-' and '_', starting with a letter",
        ))
    }
}

fn validate_choices(choices: &ChoicesSpec) -> Result<(), SpaceError> {
    let table = &choices.table;
    if table.is_empty() {
        return Err(invalid("choices.table", "the choice set is empty"));
    }
    if table.len() > MAX_CHOICES {
        return Err(invalid(
            "choices.table",
            format!(
                "at most {MAX_CHOICES} choices (one hex digit per layer in the text form), got {}",
                table.len()
            ),
        ));
    }
    for (n, c) in table.iter().enumerate() {
        let field = format!("choices.table[{n}]");
        if c.c as usize != n {
            return Err(invalid(
                format!("{field}.c"),
                format!(
                    "choices must be numbered 0, 1, 2, ... in order; expected {n}, got {}",
                    c.c
                ),
            ));
        }
        check_kernel(c.kernel, &format!("{field}.kernel"))?;
        if c.expansion == 0 || c.expansion > 16 {
            return Err(invalid(format!("{field}.expansion"), "must be 1..=16"));
        }
        if table[..n]
            .iter()
            .any(|o| (o.kernel, o.expansion, o.se) == (c.kernel, c.expansion, c.se))
        {
            return Err(invalid(field, "duplicates an earlier choice"));
        }
    }
    Ok(())
}

fn check_kernel(k: u32, field: &str) -> Result<(), SpaceError> {
    if k % 2 == 1 && k <= 11 {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("kernel must be odd and at most 11, got {k}"),
        ))
    }
}

fn check_stride(s: u32, field: &str) -> Result<(), SpaceError> {
    if s == 1 || s == 2 {
        Ok(())
    } else {
        Err(invalid(field, format!("stride must be 1 or 2, got {s}")))
    }
}

fn check_channels(c: u32, field: &str) -> Result<(), SpaceError> {
    if (1..=8192).contains(&c) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("channels must be 1..=8192, got {c}"),
        ))
    }
}

fn check_cin(cin: u32, shape: Shape, field: &str) -> Result<(), SpaceError> {
    if cin == shape.c {
        Ok(())
    } else {
        Err(invalid(
            format!("{field}.cin"),
            format!(
                "channels don't chain: the previous part gives {} channels, this op takes {cin}",
                shape.c
            ),
        ))
    }
}

/// Checks one stem or head op against the shape flowing into it, and returns its output shape.
fn check_fixed(op: &FixedOpSpec, shape: Shape, field: &str) -> Result<Shape, SpaceError> {
    match op {
        FixedOpSpec::Conv {
            kernel,
            stride,
            cin,
            cout,
            act,
            ..
        }
        | FixedOpSpec::Dwsep {
            kernel,
            stride,
            cin,
            cout,
            act,
            ..
        } => {
            check_kernel(*kernel, &format!("{field}.kernel"))?;
            check_stride(*stride, &format!("{field}.stride"))?;
            check_cin(*cin, shape, field)?;
            check_channels(*cout, &format!("{field}.cout"))?;
            if *act == Activation::Hsigmoid {
                return Err(invalid(
                    format!("{field}.act"),
                    "hsigmoid is only used as the SE gate",
                ));
            }
            if let FixedOpSpec::Dwsep { residual: true, .. } = op {
                return Err(invalid(
                    format!("{field}.residual"),
                    "a residual dwsep stem block is not supported",
                ));
            }
        }
        FixedOpSpec::GlobalAvgPool => {}
        FixedOpSpec::Fc { cin, cout, .. } => {
            if shape.h != 1 || shape.w != 1 {
                return Err(invalid(
                    field.to_string(),
                    format!("fc needs a 1x1 map (pool first), got {shape}"),
                ));
            }
            check_cin(*cin, shape, field)?;
            check_channels(*cout, &format!("{field}.cout"))?;
        }
    }
    Ok(fixed_op(op).output(shape))
}

fn fixed_op(op: &FixedOpSpec) -> BlockOp {
    match *op {
        FixedOpSpec::Conv {
            kernel,
            stride,
            cin,
            cout,
            bias,
            act,
            ..
        } => BlockOp::Conv {
            kernel,
            stride,
            cin,
            cout,
            bias,
            act,
        },
        FixedOpSpec::Dwsep {
            kernel,
            stride,
            cin,
            cout,
            act,
            ..
        } => BlockOp::DwSep {
            kernel,
            stride,
            cin,
            cout,
            act,
        },
        FixedOpSpec::GlobalAvgPool => BlockOp::GlobalAvgPool,
        FixedOpSpec::Fc { cin, cout, bias } => BlockOp::Fc { cin, cout, bias },
    }
}

fn fixed_blocks(ops: &[FixedOpSpec], mut shape: Shape) -> Vec<Block> {
    ops.iter()
        .map(|op| {
            let b = Block::new(fixed_op(op), shape);
            shape = b.output;
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moga_json() -> serde_json::Value {
        serde_json::from_str(MOGA_MBV3_SPEC).unwrap()
    }

    fn refuse(mutate: impl FnOnce(&mut serde_json::Value)) -> SpaceError {
        let mut v = moga_json();
        mutate(&mut v);
        SearchSpace::from_json(&v.to_string()).unwrap_err()
    }

    #[test]
    fn builtin_space_has_120_distinct_choice_blocks() {
        let s = SearchSpace::moga_mbv3();
        let blocks = s.distinct_blocks();
        let choice = blocks
            .iter()
            .filter(|b| b.part == BlockPart::Choice)
            .count();
        assert_eq!(choice, 120);
        assert_eq!(
            blocks.iter().filter(|b| b.part == BlockPart::Stem).count(),
            2
        );
        assert_eq!(
            blocks.iter().filter(|b| b.part == BlockPart::Head).count(),
            4
        );
        let uses: usize = blocks.iter().map(|b| b.uses.len()).sum();
        assert_eq!(uses, 14 * 12, "every (layer, choice) pair is listed once");
        assert_eq!(s.size(), Some(12u128.pow(14)));
    }

    #[test]
    fn channels_that_do_not_chain_are_named() {
        let e = refuse(|v| v["layers"][3]["cin"] = 41.into());
        assert!(
            matches!(&e, SpaceError::Invalid { field, reason } if field == "layers[3].cin" && reason.contains("don't chain")),
            "{e}"
        );
    }

    #[test]
    fn unknown_activation_is_named_with_its_path() {
        let e = refuse(|v| v["layers"][2]["act"] = "gelu".into());
        assert!(
            matches!(&e, SpaceError::Json { field, reason } if field == "layers[2].act" && reason.contains("gelu")),
            "{e}"
        );
    }

    #[test]
    fn empty_choice_set_is_refused() {
        let e = refuse(|v| v["choices"]["table"] = serde_json::json!([]));
        assert!(e.to_string().contains("choice set is empty"), "{e}");
    }

    #[test]
    fn more_choices_than_hex_digits_are_refused() {
        let e = refuse(|v| {
            let t: Vec<_> = (0..17)
                .map(|c| serde_json::json!({"c": c, "kernel": 3, "expansion": c + 1, "se": false}))
                .collect();
            v["choices"]["table"] = t.into();
        });
        assert!(e.to_string().contains("at most 16"), "{e}");
    }

    #[test]
    fn even_kernels_bad_strides_and_misnumbered_choices_are_refused() {
        let e = refuse(|v| v["choices"]["table"][1]["kernel"] = 4.into());
        assert!(e.to_string().contains("choices.table[1].kernel"), "{e}");
        let e = refuse(|v| v["layers"][0]["stride"] = 3.into());
        assert!(e.to_string().contains("layers[0].stride"), "{e}");
        let e = refuse(|v| v["choices"]["table"][2]["c"] = 7.into());
        assert!(e.to_string().contains("choices.table[2].c"), "{e}");
    }

    #[test]
    fn head_must_chain_and_pool_before_fc() {
        let e = refuse(|v| v["head"][0]["cin"] = 112.into());
        assert!(e.to_string().contains("head[0].cin"), "{e}");
        let e = refuse(|v| {
            v["head"].as_array_mut().unwrap().remove(1);
        });
        assert!(e.to_string().contains("1x1 map"), "{e}");
    }

    #[test]
    fn missing_fields_and_bad_names_are_refused() {
        let e = refuse(|v| {
            v.as_object_mut().unwrap().remove("layers");
        });
        assert!(e.to_string().contains("layers"), "{e}");
        let e = refuse(|v| v["name"] = "Bad Name".into());
        assert!(e.to_string().contains("`name`"), "{e}");
    }

    #[test]
    fn spec_round_trips_through_json() {
        let s = SearchSpace::moga_mbv3();
        let text = serde_json::to_string(s.spec()).unwrap();
        let again = SearchSpace::from_json(&text).unwrap();
        assert_eq!(again.spec(), s.spec());
    }
}
