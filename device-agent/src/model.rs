//! Networks as the kernels see them: the ops a list of [`Block`]s lowers to, with seeded random
//! weights and BN already folded into every conv's weights and bias.
//!
//! Both the CPU reference ([`crate::reference`]) and the GPU programs ([`crate::gpu`]) read
//! this one description, so the two can only disagree through a kernel bug, never through a
//! different reading of a block.
//!
//! Layout: every feature map is f32, batch 1, **HWC** (channels last, index
//! `(y * w + x) * c + ch`), the order of block keys. Channels last keeps a pixel's channels
//! contiguous, so pointwise convs are plain matrix products and vec4 loads run along channels.
//! Weights are stored with the output channel fastest: dense conv `[ky][kx][cin][cout]`,
//! depthwise `[ky][kx][c]`, fully connected and SE convs `[cin][cout]`.

use gpulut_tables::block::{Activation, Block, BlockOp, Shape};

/// A value flowing through a network: 0 is the input, `i + 1` the output of node `i`.
pub type ValueId = usize;

/// Why a list of blocks cannot become a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("a network needs at least one block")]
    Empty,
    #[error("block {index} ({key}) takes {expected} but the previous block gives {got}")]
    ShapeMismatch {
        index: usize,
        key: String,
        expected: Shape,
        got: Shape,
    },
    #[error("block {key} cannot be built: {reason}")]
    Unsupported { key: String, reason: String },
}

/// Dense kxk convolution, stride s, padding k/2, bias (BN folded) and activation.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub kernel: u32,
    pub stride: u32,
    pub cin: u32,
    pub cout: u32,
    pub act: Activation,
    /// `[ky][kx][cin][cout]`
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Conv {
    /// A 1x1 stride-1 conv: a matrix product over the channels of each pixel.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1
    }
}

/// Depthwise kxk convolution, stride s, padding k/2, bias and activation.
#[derive(Debug, Clone, PartialEq)]
pub struct Depthwise {
    pub kernel: u32,
    pub stride: u32,
    pub channels: u32,
    pub act: Activation,
    /// `[ky][kx][c]`
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Squeeze-excitation: global average pool, 1x1 conv to `squeeze` channels with bias and
/// `act`, 1x1 conv back with bias and h-sigmoid, then every channel scaled by its gate.
#[derive(Debug, Clone, PartialEq)]
pub struct SqueezeExcite {
    pub channels: u32,
    pub squeeze: u32,
    pub act: Activation,
    /// `[channels][squeeze]`
    pub reduce_weight: Vec<f32>,
    pub reduce_bias: Vec<f32>,
    /// `[squeeze][channels]`
    pub expand_weight: Vec<f32>,
    pub expand_bias: Vec<f32>,
}

/// Fully connected layer on a 1x1 map.
#[derive(Debug, Clone, PartialEq)]
pub struct FullyConnected {
    pub cin: u32,
    pub cout: u32,
    /// `[cin][cout]`
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv(Conv),
    Depthwise(Depthwise),
    SqueezeExcite(SqueezeExcite),
    GlobalAvgPool,
    FullyConnected(FullyConnected),
    /// The node's input plus an earlier value of the same shape (the residual of a block).
    Add {
        other: ValueId,
    },
}

impl Op {
    /// Short name for labels and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Conv(c) if c.is_pointwise() => "pointwise",
            Self::Conv(_) => "conv",
            Self::Depthwise(_) => "depthwise",
            Self::SqueezeExcite(_) => "squeeze-excite",
            Self::GlobalAvgPool => "global-avg-pool",
            Self::FullyConnected(_) => "fully-connected",
            Self::Add { .. } => "add",
        }
    }
}

/// One op applied to one earlier value.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub input: ValueId,
    pub in_shape: Shape,
    pub out_shape: Shape,
}

/// A chain of ops with real data flowing from one to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub input: Shape,
    pub nodes: Vec<Node>,
}

impl Network {
    /// Lowers blocks, run in order, to ops with weights drawn from `seed`.
    ///
    /// Weights are uniform with He scaling (variance 2 / fan-in) before a ReLU or h-swish and
    /// LeCun scaling (1 / fan-in) otherwise, so activations neither vanish nor explode across
    /// a whole network and the verification's relative error stays meaningful. Biases are
    /// uniform in [-0.1, 0.1].
    pub fn from_blocks(blocks: &[Block], seed: u64) -> Result<Self, ModelError> {
        let first = blocks.first().ok_or(ModelError::Empty)?;
        let mut builder = Builder {
            rng: Rng::new(seed),
            net: Network {
                input: first.input,
                nodes: Vec::new(),
            },
        };
        let mut shape = first.input;
        for (index, block) in blocks.iter().enumerate() {
            if block.input != shape {
                return Err(ModelError::ShapeMismatch {
                    index,
                    key: block.key.to_string(),
                    expected: block.input,
                    got: shape,
                });
            }
            builder.block(block)?;
            shape = builder.net.output_shape();
        }
        Ok(builder.net)
    }

    /// The network of one block.
    pub fn from_block(block: &Block, seed: u64) -> Result<Self, ModelError> {
        Self::from_blocks(std::slice::from_ref(block), seed)
    }

    pub fn output_shape(&self) -> Shape {
        self.nodes.last().map_or(self.input, |n| n.out_shape)
    }

    /// The id of the network's output value.
    pub fn output(&self) -> ValueId {
        self.nodes.len()
    }

    pub fn value_shape(&self, value: ValueId) -> Shape {
        if value == 0 {
            self.input
        } else {
            self.nodes[value - 1].out_shape
        }
    }

    /// A seeded random input in [-1, 1].
    pub fn random_input(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed ^ 0x1A2B_3C4D_5E6F_7081);
        (0..self.input.len()).map(|_| rng.uniform(1.0)).collect()
    }

    /// Floating-point operations per run: two per multiply-accumulate of every conv, depthwise
    /// conv, SE conv and fully connected layer (the spaces' MAC convention).
    pub fn flops(&self) -> u64 {
        self.nodes.iter().map(|n| 2 * node_macs(n)).sum()
    }

    /// Bytes the unfused op graph moves per run in f32: each op's inputs, weights and output
    /// once. A property of the network, not of a kernel, so GB/s compares implementations.
    pub fn bytes(&self) -> u64 {
        let values: u64 = self
            .nodes
            .iter()
            .map(|n| {
                let extra_input = match n.op {
                    Op::Add { .. } => n.in_shape.len(),
                    _ => 0,
                };
                n.in_shape.len() + extra_input + n.out_shape.len() + n.op.parameter_count()
            })
            .sum();
        4 * values
    }
}

impl Op {
    /// Weights and biases the op reads.
    pub fn parameter_count(&self) -> u64 {
        let len = |v: &Vec<f32>| v.len() as u64;
        match self {
            Op::Conv(c) => len(&c.weight) + len(&c.bias),
            Op::Depthwise(d) => len(&d.weight) + len(&d.bias),
            Op::SqueezeExcite(s) => {
                len(&s.reduce_weight)
                    + len(&s.reduce_bias)
                    + len(&s.expand_weight)
                    + len(&s.expand_bias)
            }
            Op::FullyConnected(f) => len(&f.weight) + len(&f.bias),
            Op::GlobalAvgPool | Op::Add { .. } => 0,
        }
    }
}

fn node_macs(n: &Node) -> u64 {
    let u = u64::from;
    let out_px = u(n.out_shape.h) * u(n.out_shape.w);
    match &n.op {
        Op::Conv(c) => u(c.kernel) * u(c.kernel) * u(c.cin) * u(c.cout) * out_px,
        Op::Depthwise(d) => u(d.kernel) * u(d.kernel) * u(d.channels) * out_px,
        Op::SqueezeExcite(s) => 2 * u(s.channels) * u(s.squeeze),
        Op::FullyConnected(f) => u(f.cin) * u(f.cout),
        Op::GlobalAvgPool | Op::Add { .. } => 0,
    }
}

struct Builder {
    rng: Rng,
    net: Network,
}

impl Builder {
    fn push(&mut self, op: Op, input: ValueId, out_shape: Shape) -> ValueId {
        let in_shape = self.net.value_shape(input);
        self.net.nodes.push(Node {
            op,
            input,
            in_shape,
            out_shape,
        });
        self.net.nodes.len()
    }

    fn weights(&mut self, n: usize, fan_in: u32, act: Activation) -> Vec<f32> {
        let gain = match act {
            Activation::Relu | Activation::Hswish => 6.0,
            Activation::None | Activation::Hsigmoid => 3.0,
        };
        let bound = (gain / f64::from(fan_in.max(1))).sqrt() as f32;
        (0..n).map(|_| self.rng.uniform(bound)).collect()
    }

    fn biases(&mut self, n: u32) -> Vec<f32> {
        (0..n).map(|_| self.rng.uniform(0.1)).collect()
    }

    fn conv(
        &mut self,
        input: ValueId,
        kernel: u32,
        stride: u32,
        cout: u32,
        act: Activation,
    ) -> ValueId {
        let s = self.net.value_shape(input);
        let cin = s.c;
        let weight = self.weights(
            (kernel * kernel * cin * cout) as usize,
            kernel * kernel * cin,
            act,
        );
        let bias = self.biases(cout);
        let out = Shape::new(s.h.div_ceil(stride), s.w.div_ceil(stride), cout);
        self.push(
            Op::Conv(Conv {
                kernel,
                stride,
                cin,
                cout,
                act,
                weight,
                bias,
            }),
            input,
            out,
        )
    }

    fn depthwise(&mut self, input: ValueId, kernel: u32, stride: u32, act: Activation) -> ValueId {
        let s = self.net.value_shape(input);
        let weight = self.weights((kernel * kernel * s.c) as usize, kernel * kernel, act);
        let bias = self.biases(s.c);
        let out = Shape::new(s.h.div_ceil(stride), s.w.div_ceil(stride), s.c);
        self.push(
            Op::Depthwise(Depthwise {
                kernel,
                stride,
                channels: s.c,
                act,
                weight,
                bias,
            }),
            input,
            out,
        )
    }

    fn block(&mut self, block: &Block) -> Result<(), ModelError> {
        let unsupported = |reason: &str| ModelError::Unsupported {
            key: block.key.to_string(),
            reason: reason.to_owned(),
        };
        let check_kernel = |k: u32, s: u32| {
            if k % 2 == 0 || k == 0 || k > 11 {
                Err(unsupported("kernels must be odd and at most 11"))
            } else if s == 0 || s > 2 {
                Err(unsupported("strides must be 1 or 2"))
            } else {
                Ok(())
            }
        };
        let input = self.net.output();
        match block.op {
            BlockOp::Conv {
                kernel,
                stride,
                cout,
                act,
                ..
            } => {
                check_kernel(kernel, stride)?;
                self.conv(input, kernel, stride, cout, act);
            }
            BlockOp::DwSep {
                kernel,
                stride,
                cout,
                act,
                ..
            } => {
                check_kernel(kernel, stride)?;
                let dw = self.depthwise(input, kernel, stride, act);
                self.conv(dw, 1, 1, cout, Activation::None);
            }
            BlockOp::InvertedResidual {
                kernel,
                stride,
                cin,
                hidden,
                cout,
                se,
                act,
            } => {
                check_kernel(kernel, stride)?;
                if hidden == 0 || se.is_some_and(|s| s.squeeze == 0) {
                    return Err(unsupported("hidden and squeeze channels must be positive"));
                }
                let expanded = if hidden == cin {
                    input
                } else {
                    self.conv(input, 1, 1, hidden, act)
                };
                let mut x = self.depthwise(expanded, kernel, stride, act);
                if let Some(se) = se {
                    let shape = self.net.value_shape(x);
                    let reduce_weight =
                        self.weights((hidden * se.squeeze) as usize, hidden, se.act);
                    let reduce_bias = self.biases(se.squeeze);
                    let expand_weight = self.weights(
                        (se.squeeze * hidden) as usize,
                        se.squeeze,
                        Activation::Hsigmoid,
                    );
                    let expand_bias = self.biases(hidden);
                    x = self.push(
                        Op::SqueezeExcite(SqueezeExcite {
                            channels: hidden,
                            squeeze: se.squeeze,
                            act: se.act,
                            reduce_weight,
                            reduce_bias,
                            expand_weight,
                            expand_bias,
                        }),
                        x,
                        shape,
                    );
                }
                let projected = self.conv(x, 1, 1, cout, Activation::None);
                if block.op.has_residual() {
                    let shape = self.net.value_shape(projected);
                    self.push(Op::Add { other: input }, projected, shape);
                }
            }
            BlockOp::GlobalAvgPool => {
                let s = self.net.value_shape(input);
                self.push(Op::GlobalAvgPool, input, Shape::new(1, 1, s.c));
            }
            BlockOp::Fc { cin, cout, .. } => {
                let s = self.net.value_shape(input);
                if s.h != 1 || s.w != 1 || s.c != cin {
                    return Err(unsupported(
                        "a fully connected layer needs a 1x1 map of cin channels",
                    ));
                }
                let weight = self.weights((cin * cout) as usize, cin, Activation::None);
                let bias = self.biases(cout);
                self.push(
                    Op::FullyConnected(FullyConnected {
                        cin,
                        cout,
                        weight,
                        bias,
                    }),
                    input,
                    Shape::new(1, 1, cout),
                );
            }
        }
        if self.net.output_shape() != block.output {
            return Err(unsupported(
                "the lowered ops do not give the block's output shape",
            ));
        }
        Ok(())
    }
}

/// SplitMix64: tiny, seedable and the same on every platform, so a seed names the same weights
/// on a phone and on the server.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-bound, bound).
    pub fn uniform(&mut self, bound: f32) -> f32 {
        ((self.unit() * 2.0 - 1.0) * f64::from(bound)) as f32
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use gpulut_tables::SearchSpace;
    use gpulut_tables::arch::ArchSpec;

    use super::*;

    #[test]
    fn inverted_residual_lowers_to_its_ops() {
        let space = SearchSpace::moga_mbv3();
        // layer 2 (24 -> 24, stride 1): residual; choice 9 = e6 k3 se
        let block = Block::new(
            space.choice_op(1, &space.choices()[9]),
            space.layer_input(1),
        );
        let net = Network::from_block(&block, 1).unwrap();
        let names: Vec<_> = net.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(
            names,
            [
                "pointwise",
                "depthwise",
                "squeeze-excite",
                "pointwise",
                "add"
            ]
        );
        assert_eq!(net.nodes[4].op, Op::Add { other: 0 });
        assert_eq!(net.output_shape(), block.output);
        // The MACs follow the space's conventions.
        assert_eq!(net.flops(), 2 * block.macs);
    }

    #[test]
    fn whole_architecture_chains_and_counts() {
        let space = SearchSpace::moga_mbv3();
        let arch = space.resolve(&ArchSpec::from("MoGA-A")).unwrap();
        let blocks = space.expand(&arch);
        let net = Network::from_blocks(&blocks, 7).unwrap();
        assert_eq!(net.output_shape(), Shape::new(1, 1, 1000));
        let macs: u64 = blocks.iter().map(|b| b.macs).sum();
        assert_eq!(net.flops(), 2 * macs);
        assert!(net.bytes() > 0);
    }

    #[test]
    fn weights_are_seeded() {
        let space = SearchSpace::moga_mbv3();
        let block = Block::new(
            space.choice_op(0, &space.choices()[0]),
            space.layer_input(0),
        );
        let a = Network::from_block(&block, 3).unwrap();
        let b = Network::from_block(&block, 3).unwrap();
        let c = Network::from_block(&block, 4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.random_input(1), b.random_input(1));
    }

    #[test]
    fn blocks_that_do_not_chain_are_refused() {
        let space = SearchSpace::moga_mbv3();
        let b0 = Block::new(
            space.choice_op(0, &space.choices()[0]),
            space.layer_input(0),
        );
        let b2 = Block::new(
            space.choice_op(3, &space.choices()[0]),
            space.layer_input(3),
        );
        let e = Network::from_blocks(&[b0, b2], 1).unwrap_err();
        assert!(
            matches!(e, ModelError::ShapeMismatch { index: 1, .. }),
            "{e}"
        );
        assert_eq!(Network::from_blocks(&[], 1).unwrap_err(), ModelError::Empty);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut v: Vec<u32> = (0..50).collect();
        Rng::new(5).shuffle(&mut v);
        let mut w: Vec<u32> = (0..50).collect();
        Rng::new(5).shuffle(&mut w);
        assert_eq!(v, w);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
