//! Blocks: the measurable units an architecture is made of, their canonical keys, and the
//! parameter and multiply-accumulate accounting of a search space's `counting_conventions`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Non-linearities the spaces use. Spelled in specs and keys as lowercase words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// No activation (projection convs, the classifier).
    None,
    Relu,
    /// `x * relu6(x + 3) / 6`
    Hswish,
    /// `relu6(x + 3) / 6`
    Hsigmoid,
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Relu => "relu",
            Self::Hswish => "hswish",
            Self::Hsigmoid => "hsigmoid",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A feature map's shape, batch 1, in height x width x channels order (the order of block keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shape {
    pub h: u32,
    pub w: u32,
    pub c: u32,
}

impl Shape {
    pub fn new(h: u32, w: u32, c: u32) -> Self {
        Self { h, w, c }
    }

    /// Number of values in the map.
    pub fn len(&self) -> u64 {
        u64::from(self.h) * u64::from(self.w) * u64::from(self.c)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.h, self.w, self.c)
    }
}

/// Output side of a kxk window with stride s and padding k/2 (odd k), as every conv in the
/// spaces uses: `ceil(n / s)`.
pub fn conv_out(n: u32, stride: u32) -> u32 {
    n.div_ceil(stride)
}

/// Squeeze-excitation inside an inverted-residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SqueezeExcite {
    /// Channels of the squeezed vector.
    pub squeeze: u32,
    /// Activation after the first (squeezing) 1x1 conv; the gate is always h-sigmoid.
    pub act: Activation,
}

/// What a block computes, with every size needed to build its kernels. BN is folded into
/// the preceding conv's weights and bias, so it never appears as an op of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BlockOp {
    /// A dense kxk convolution (the stem, and 1x1 convs of the head).
    Conv {
        kernel: u32,
        stride: u32,
        cin: u32,
        cout: u32,
        /// Whether the unfused model declares a bias (convs followed by BN do not).
        bias: bool,
        act: Activation,
    },
    /// Depthwise kxk conv + act, then pointwise 1x1 conv with no activation (MobileNet's
    /// first block). Spelled `dwsep`, as in space specs.
    #[serde(rename = "dwsep")]
    DwSep {
        kernel: u32,
        stride: u32,
        cin: u32,
        cout: u32,
        act: Activation,
    },
    /// MobileNetV2/V3 inverted residual: expand 1x1 (skipped when `hidden == cin`), depthwise
    /// kxk, optional squeeze-excitation, project 1x1, and a residual add when the shapes allow.
    InvertedResidual {
        kernel: u32,
        stride: u32,
        cin: u32,
        hidden: u32,
        cout: u32,
        se: Option<SqueezeExcite>,
        act: Activation,
    },
    GlobalAvgPool,
    /// Fully connected layer on a 1x1 map.
    Fc {
        cin: u32,
        cout: u32,
        bias: bool,
    },
}

impl BlockOp {
    /// Output shape for an input of `input` shape.
    pub fn output(&self, input: Shape) -> Shape {
        match *self {
            Self::Conv { stride, cout, .. }
            | Self::DwSep { stride, cout, .. }
            | Self::InvertedResidual { stride, cout, .. } => {
                Shape::new(conv_out(input.h, stride), conv_out(input.w, stride), cout)
            }
            Self::GlobalAvgPool => Shape::new(1, 1, input.c),
            Self::Fc { cout, .. } => Shape::new(1, 1, cout),
        }
    }

    /// Channels this op expects on its input, where it fixes them.
    pub fn cin(&self) -> Option<u32> {
        match *self {
            Self::Conv { cin, .. }
            | Self::DwSep { cin, .. }
            | Self::InvertedResidual { cin, .. }
            | Self::Fc { cin, .. } => Some(cin),
            Self::GlobalAvgPool => None,
        }
    }

    /// Whether an inverted residual adds its input to its output.
    pub fn has_residual(&self) -> bool {
        matches!(*self, Self::InvertedResidual { stride: 1, cin, cout, .. } if cin == cout)
    }
}

/// The canonical, human-readable identity of a block: stable across releases, because latency
/// tables are keyed by it. Two layers with the same shapes and choice share one key.
///
/// Grammar (tokens joined by `-`):
/// - `conv-i{in}-o{out}-k{k}-s{s}-{act}` (act omitted when none)
/// - `dwsep-i{in}-o{out}-k{k}-s{s}-{act}`
/// - `mbconv-i{in}-o{out}-e{hidden/cin}-k{k}-s{s}-{se}-{act}`, where the expansion token is
///   `h{hidden}` when hidden is not a whole multiple of cin, and `{se}` is `se0` (none), `se1`
///   (the MoGA convention: squeeze = hidden/4, inner act = the block's act), or
///   `seq{squeeze}{r|h}` otherwise (`r` = ReLU, `h` = h-swish inner activation)
/// - `gap-i{in}`, `fc-i{cin}-o{cout}`
///
/// where `{in}` and `{out}` are `HxWxC`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlockKey(String);

impl BlockKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a key received from outside (a table row, a request). Keys are opaque for
    /// lookups; whether a key belongs to a space is answered by the space's block list.
    pub fn from_string(key: String) -> Self {
        Self(key)
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BlockKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One concrete, measurable unit with fixed shapes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Block {
    pub key: BlockKey,
    pub input: Shape,
    pub output: Shape,
    #[serde(flatten)]
    pub op: BlockOp,
    pub params: u64,
    pub macs: u64,
}

impl Block {
    /// Builds the block for `op` applied to a map of shape `input`, with its key and counts.
    pub fn new(op: BlockOp, input: Shape) -> Self {
        let output = op.output(input);
        let key = BlockKey(key_of(&op, input, output));
        let (params, macs) = count(&op, input, output);
        Self {
            key,
            input,
            output,
            op,
            params,
            macs,
        }
    }
}

fn act_suffix(act: Activation) -> String {
    match act {
        Activation::None => String::new(),
        a => format!("-{a}"),
    }
}

fn key_of(op: &BlockOp, input: Shape, output: Shape) -> String {
    match *op {
        BlockOp::Conv {
            kernel,
            stride,
            act,
            ..
        } => format!(
            "conv-i{input}-o{output}-k{kernel}-s{stride}{}",
            act_suffix(act)
        ),
        BlockOp::DwSep {
            kernel,
            stride,
            act,
            ..
        } => format!(
            "dwsep-i{input}-o{output}-k{kernel}-s{stride}{}",
            act_suffix(act)
        ),
        BlockOp::InvertedResidual {
            kernel,
            stride,
            cin,
            hidden,
            se,
            act,
            ..
        } => {
            let expansion = if cin > 0 && hidden % cin == 0 {
                format!("e{}", hidden / cin)
            } else {
                format!("h{hidden}")
            };
            let se = match se {
                None => "se0".to_string(),
                Some(s) if s.squeeze == hidden / 4 && s.act == act => "se1".to_string(),
                Some(s) => format!(
                    "seq{}{}",
                    s.squeeze,
                    match s.act {
                        Activation::Hswish => "h",
                        Activation::Hsigmoid => "g",
                        Activation::None => "n",
                        Activation::Relu => "r",
                    }
                ),
            };
            format!(
                "mbconv-i{input}-o{output}-{expansion}-k{kernel}-s{stride}-{se}{}",
                act_suffix(act)
            )
        }
        BlockOp::GlobalAvgPool => format!("gap-i{input}"),
        BlockOp::Fc { cin, cout, .. } => format!("fc-i{cin}-o{cout}"),
    }
}

/// Parameters and MACs under the spaces' counting conventions: every conv and FC weight, the
/// biases a layer declares (SE convs, the classifier); BN folded and not counted; MACs of every
/// conv, FC and the two SE convs; activations, pooling, adds and SE scaling not counted.
fn count(op: &BlockOp, input: Shape, output: Shape) -> (u64, u64) {
    let u = u64::from;
    let out_px = u(output.h) * u(output.w);
    let in_px = u(input.h) * u(input.w);
    match *op {
        BlockOp::Conv {
            kernel,
            cin,
            cout,
            bias,
            ..
        } => {
            let w = u(kernel) * u(kernel) * u(cin) * u(cout);
            (w + if bias { u(cout) } else { 0 }, w * out_px)
        }
        BlockOp::DwSep {
            kernel, cin, cout, ..
        } => {
            let dw = u(kernel) * u(kernel) * u(cin);
            let pw = u(cin) * u(cout);
            (dw + pw, (dw + pw) * out_px)
        }
        BlockOp::InvertedResidual {
            kernel,
            cin,
            hidden,
            cout,
            se,
            ..
        } => {
            let expand = if hidden == cin { 0 } else { u(cin) * u(hidden) };
            let dw = u(kernel) * u(kernel) * u(hidden);
            let project = u(hidden) * u(cout);
            let (se_params, se_macs) = match se {
                Some(s) => {
                    let w = 2 * u(hidden) * u(s.squeeze);
                    (w + u(s.squeeze) + u(hidden), w)
                }
                None => (0, 0),
            };
            (
                expand + dw + se_params + project,
                expand * in_px + (dw + project) * out_px + se_macs,
            )
        }
        BlockOp::GlobalAvgPool => (0, 0),
        BlockOp::Fc { cin, cout, bias } => {
            let w = u(cin) * u(cout);
            (w + if bias { u(cout) } else { 0 }, w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design_examples() {
        let ir = Block::new(
            BlockOp::InvertedResidual {
                kernel: 5,
                stride: 2,
                cin: 24,
                hidden: 144,
                cout: 40,
                se: Some(SqueezeExcite {
                    squeeze: 36,
                    act: Activation::Relu,
                }),
                act: Activation::Relu,
            },
            Shape::new(56, 56, 24),
        );
        assert_eq!(
            ir.key.as_str(),
            "mbconv-i56x56x24-o28x28x40-e6-k5-s2-se1-relu"
        );
        let stem = Block::new(
            BlockOp::Conv {
                kernel: 3,
                stride: 2,
                cin: 3,
                cout: 16,
                bias: false,
                act: Activation::Hswish,
            },
            Shape::new(224, 224, 3),
        );
        assert_eq!(
            stem.key.as_str(),
            "conv-i224x224x3-o112x112x16-k3-s2-hswish"
        );
        assert_eq!(stem.params, 3 * 3 * 3 * 16);
        assert_eq!(stem.macs, 3 * 3 * 3 * 16 * 112 * 112);
    }

    #[test]
    fn non_grid_expansion_and_se_get_explicit_tokens() {
        let b = Block::new(
            BlockOp::InvertedResidual {
                kernel: 3,
                stride: 1,
                cin: 80,
                hidden: 200,
                cout: 80,
                se: Some(SqueezeExcite {
                    squeeze: 56,
                    act: Activation::Relu,
                }),
                act: Activation::Hswish,
            },
            Shape::new(14, 14, 80),
        );
        assert_eq!(
            b.key.as_str(),
            "mbconv-i14x14x80-o14x14x80-h200-k3-s1-seq56r-hswish"
        );
        assert!(b.op.has_residual());
    }

    #[test]
    fn outputs_round_up_with_same_padding() {
        assert_eq!(conv_out(7, 2), 4);
        assert_eq!(conv_out(224, 2), 112);
        assert_eq!(conv_out(14, 1), 14);
    }
}
