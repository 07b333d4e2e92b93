//! Lowering a [`Network`] to dispatches for one framework: which kernel, with which
//! specialisation constants, bound to which tensors and weights, over how many workgroups.
//!
//! The result names tensors, not buffers; [`super::program`] assigns buffers by liveness.

use std::borrow::Cow;

use gpulut_tables::block::{Activation, Shape};

use crate::framework::Framework;
use crate::gpu::PointwiseStrategy;
use crate::model::{Conv, Depthwise, FullyConnected, Network, Op, SqueezeExcite};

use super::{codegen, fused};

/// A WGSL kernel. Each has one `main` entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Kernel {
    Conv,
    Pointwise,
    Depthwise,
    Activation,
    Pool,
    Linear,
    Scale,
    Add,
    FusedConv,
    /// Generated: dense conv with `cin` input channels baked in, `row` pixels x `blocks`
    /// vec4s per invocation.
    FusedConvBlocked {
        kernel: u8,
        stride: u8,
        cin: u8,
        row: u8,
        blocks: u8,
    },
    /// Generated: `pixels` x `blocks` register blocking.
    FusedPointwise {
        pixels: u8,
        blocks: u8,
    },
    /// Generated: `row` outputs per invocation, and with `pool` per-invocation sums for the
    /// squeeze-excitation that follows.
    FusedDepthwise {
        kernel: u8,
        stride: u8,
        row: u8,
        pool: bool,
    },
    FusedPointwiseTiled,
    FusedSeGate,
    FusedLinear,
    FusedPool,
}

impl Kernel {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Conv => "conv",
            Self::Pointwise => "pointwise",
            Self::Depthwise => "depthwise",
            Self::Activation => "activation",
            Self::Pool => "pool",
            Self::Linear => "linear",
            Self::Scale => "scale",
            Self::Add => "add",
            Self::FusedConv => "fused_conv",
            Self::FusedConvBlocked { .. } => "fused_conv_blocked",
            Self::FusedPointwise { .. } => "fused_pointwise",
            Self::FusedDepthwise { .. } => "fused_depthwise",
            Self::FusedPointwiseTiled => "fused_pointwise_tiled",
            Self::FusedSeGate => "fused_se_gate",
            Self::FusedLinear => "fused_linear",
            Self::FusedPool => "fused_pool",
        }
    }

    pub(super) fn source(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::FusedConvBlocked {
                kernel,
                stride,
                cin,
                row,
                blocks,
            } => {
                return Cow::Owned(codegen::conv(
                    kernel.into(),
                    stride.into(),
                    cin.into(),
                    row.into(),
                    blocks.into(),
                ));
            }
            Self::FusedPointwise { pixels, blocks } => {
                return Cow::Owned(codegen::pointwise(pixels.into(), blocks.into()));
            }
            Self::FusedDepthwise {
                kernel,
                stride,
                row,
                pool,
            } => {
                return Cow::Owned(codegen::depthwise(
                    kernel.into(),
                    stride.into(),
                    row.into(),
                    pool,
                ));
            }
            Self::Conv => include_str!("shaders/conv.wgsl"),
            Self::Pointwise => include_str!("shaders/pointwise.wgsl"),
            Self::Depthwise => include_str!("shaders/depthwise.wgsl"),
            Self::Activation => include_str!("shaders/activation.wgsl"),
            Self::Pool => include_str!("shaders/pool.wgsl"),
            Self::Linear => include_str!("shaders/linear.wgsl"),
            Self::Scale => include_str!("shaders/scale.wgsl"),
            Self::Add => include_str!("shaders/add.wgsl"),
            Self::FusedConv => include_str!("shaders/fused_conv.wgsl"),
            Self::FusedPointwiseTiled => include_str!("shaders/fused_pointwise_tiled.wgsl"),
            Self::FusedSeGate => include_str!("shaders/fused_se_gate.wgsl"),
            Self::FusedLinear => include_str!("shaders/fused_linear.wgsl"),
            Self::FusedPool => include_str!("shaders/fused_pool.wgsl"),
        })
    }
}

/// Size of the uniform weight arrays of the fused kernels (`WCAP` vec4s in the WGSL); devices
/// whose uniform bindings are smaller get the storage-buffer kernels instead.
pub(super) const UNIFORM_WEIGHTS_BYTES: u64 = 65536;

/// Bytes of a [`Binding::TensorUniform`]: 1024 channels, the `array<vec4<f32>, 256>` the
/// pointwise kernel declares for its gate.
pub(super) const GATE_UNIFORM_BYTES: u64 = 4096;

/// What lowering needs to know about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeviceLimits {
    pub max_workgroups_per_dim: u32,
    pub max_uniform_binding: u64,
    /// Never `Auto` here: resolved for the adapter when the GPU is opened.
    pub pointwise: PointwiseStrategy,
}

/// Index of a tensor of the lowered program.
pub(super) type TensorId = usize;

/// What one binding slot of a dispatch holds; slot `n` is `@binding(n)` of group 0.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Binding {
    /// A small uniform of u32 sizes (the direct kernels read their shapes from it).
    Uniform(Vec<u32>),
    /// Read-only weights, uploaded once.
    Weights(Vec<f32>),
    /// Read-only weights in a uniform buffer of [`UNIFORM_WEIGHTS_BYTES`] (zero-padded): the
    /// kernels declare a fixed-size array there.
    UniformWeights(Vec<f32>),
    /// A feature map or scratch vector, read or written.
    Tensor(TensorId),
    /// The first [`GATE_UNIFORM_BYTES`] of a tensor bound as a uniform (the SE gate read by
    /// the project conv); the tensor must be at least that long.
    TensorUniform(TensorId),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    pub kernel: Kernel,
    /// Values of the kernel's `override` constants; they specialise shapes at pipeline build.
    pub constants: Vec<(&'static str, f64)>,
    pub bindings: Vec<Binding>,
    pub workgroups: [u32; 3],
    /// What the step computes, for error messages.
    pub label: String,
}

/// A network as dispatches over tensors.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lowered {
    /// Length in f32 of every tensor.
    pub tensors: Vec<u64>,
    pub input: TensorId,
    pub output: TensorId,
    pub steps: Vec<Step>,
}

impl Lowered {
    pub(super) fn tensor(&mut self, len: u64) -> TensorId {
        self.tensors.push(len.max(1));
        self.tensors.len() - 1
    }
}

/// Workgroup counts for `groups` workgroups in total, spread over y when x would pass the
/// per-dimension limit. Kernels recover the flat index as `gid.x + gid.y * nwg.x * size`.
pub(super) fn grid(groups: u64, max_per_dim: u32) -> [u32; 3] {
    let max = u64::from(max_per_dim.max(1));
    let groups = groups.max(1);
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        [max as u32, groups.div_ceil(max) as u32, 1]
    }
}

pub(super) fn act_code(act: Activation) -> u32 {
    match act {
        Activation::None => 0,
        Activation::Relu => 1,
        Activation::Hswish => 2,
        Activation::Hsigmoid => 3,
    }
}

/// Lowers `net` for `framework`.
pub(super) fn lower(net: &Network, framework: Framework, limits: DeviceLimits) -> Lowered {
    match framework {
        Framework::WgpuDirect => lower_direct(net, limits.max_workgroups_per_dim),
        Framework::WgpuFused => fused::lower(net, limits),
    }
}

fn lower_direct(net: &Network, max_per_dim: u32) -> Lowered {
    let mut l = Lowered {
        tensors: Vec::new(),
        input: 0,
        output: 0,
        steps: Vec::new(),
    };
    let input = l.tensor(net.input.len());
    l.input = input;
    let mut values = vec![input];
    let mut d = Direct {
        l: &mut l,
        max_per_dim,
    };
    for (i, node) in net.nodes.iter().enumerate() {
        let x = values[node.input];
        let label = format!("node {i} ({})", node.op.name());
        let y = match &node.op {
            Op::Conv(c) => d.conv(x, node.in_shape, node.out_shape, c, &label),
            Op::Depthwise(dw) => d.depthwise(x, node.in_shape, node.out_shape, dw, &label),
            Op::SqueezeExcite(se) => d.squeeze_excite(x, node.in_shape, se, &label),
            Op::GlobalAvgPool => d.pool(x, node.in_shape, &label),
            Op::FullyConnected(fc) => d.fully_connected(x, fc, &label),
            Op::Add { other } => d.add(x, values[*other], node.out_shape.len(), &label),
        };
        values.push(y);
    }
    l.output = values[net.output()];
    l
}

/// The one-dispatch-per-op lowering; the fused lowering uses it too for ops it does not fuse.
pub(super) struct Direct<'a> {
    pub(super) l: &'a mut Lowered,
    pub(super) max_per_dim: u32,
}

impl Direct<'_> {
    pub(super) fn step(
        &mut self,
        kernel: Kernel,
        bindings: Vec<Binding>,
        threads: u64,
        label: &str,
    ) {
        self.l.steps.push(Step {
            kernel,
            constants: Vec::new(),
            bindings,
            workgroups: grid(threads.div_ceil(64), self.max_per_dim),
            label: format!("{label}: {}", kernel.name()),
        });
    }

    fn activation(&mut self, y: TensorId, len: u64, act: Activation, label: &str) {
        if act != Activation::None {
            self.step(
                Kernel::Activation,
                vec![
                    Binding::Uniform(vec![len as u32, act_code(act)]),
                    Binding::Tensor(y),
                ],
                len,
                label,
            );
        }
    }

    fn conv(&mut self, x: usize, i: Shape, o: Shape, c: &Conv, label: &str) -> TensorId {
        let total = o.len();
        let y = self.l.tensor(total);
        let weights = vec![
            Binding::Weights(c.weight.clone()),
            Binding::Weights(c.bias.clone()),
            Binding::Tensor(y),
        ];
        if c.is_pointwise() {
            let params = vec![i.h * i.w, c.cin, c.cout, total as u32];
            let mut b = vec![Binding::Uniform(params), Binding::Tensor(x)];
            b.extend(weights);
            self.step(Kernel::Pointwise, b, total, label);
        } else {
            let params = vec![
                i.h,
                i.w,
                c.cin,
                o.h,
                o.w,
                c.cout,
                c.kernel,
                c.stride,
                c.kernel / 2,
                total as u32,
            ];
            let mut b = vec![Binding::Uniform(params), Binding::Tensor(x)];
            b.extend(weights);
            self.step(Kernel::Conv, b, total, label);
        }
        self.activation(y, total, c.act, label);
        y
    }

    pub(super) fn depthwise(
        &mut self,
        x: usize,
        i: Shape,
        o: Shape,
        d: &Depthwise,
        label: &str,
    ) -> TensorId {
        let total = o.len();
        let y = self.l.tensor(total);
        let params = vec![
            i.h,
            i.w,
            i.c,
            o.h,
            o.w,
            d.kernel,
            d.stride,
            d.kernel / 2,
            total as u32,
        ];
        self.step(
            Kernel::Depthwise,
            vec![
                Binding::Uniform(params),
                Binding::Tensor(x),
                Binding::Weights(d.weight.clone()),
                Binding::Weights(d.bias.clone()),
                Binding::Tensor(y),
            ],
            total,
            label,
        );
        self.activation(y, total, d.act, label);
        y
    }

    fn pool(&mut self, x: usize, i: Shape, label: &str) -> TensorId {
        let y = self.l.tensor(u64::from(i.c));
        self.step(
            Kernel::Pool,
            vec![
                Binding::Uniform(vec![i.h * i.w, i.c]),
                Binding::Tensor(x),
                Binding::Tensor(y),
            ],
            u64::from(i.c),
            label,
        );
        y
    }

    fn linear(&mut self, x: usize, weight: &[f32], bias: &[f32], label: &str) -> TensorId {
        let cout = bias.len() as u32;
        let cin = (weight.len() / bias.len().max(1)) as u32;
        let y = self.l.tensor(u64::from(cout));
        self.step(
            Kernel::Linear,
            vec![
                Binding::Uniform(vec![cin, cout]),
                Binding::Tensor(x),
                Binding::Weights(weight.to_vec()),
                Binding::Weights(bias.to_vec()),
                Binding::Tensor(y),
            ],
            u64::from(cout),
            label,
        );
        y
    }

    fn fully_connected(&mut self, x: usize, fc: &FullyConnected, label: &str) -> TensorId {
        self.linear(x, &fc.weight, &fc.bias, label)
    }

    /// Pool, reduce, act, expand, h-sigmoid, scale: six dispatches.
    fn squeeze_excite(&mut self, x: usize, i: Shape, se: &SqueezeExcite, label: &str) -> TensorId {
        let pooled = self.pool(x, i, label);
        let squeezed = self.linear(pooled, &se.reduce_weight, &se.reduce_bias, label);
        self.activation(squeezed, u64::from(se.squeeze), se.act, label);
        let gate = self.linear(squeezed, &se.expand_weight, &se.expand_bias, label);
        self.activation(gate, u64::from(se.channels), Activation::Hsigmoid, label);
        let total = i.len();
        let y = self.l.tensor(total);
        self.step(
            Kernel::Scale,
            vec![
                Binding::Uniform(vec![total as u32, i.c]),
                Binding::Tensor(x),
                Binding::Tensor(gate),
                Binding::Tensor(y),
            ],
            total,
            label,
        );
        y
    }

    fn add(&mut self, a: usize, b: usize, total: u64, label: &str) -> TensorId {
        let y = self.l.tensor(total);
        self.step(
            Kernel::Add,
            vec![
                Binding::Uniform(vec![total as u32]),
                Binding::Tensor(a),
                Binding::Tensor(b),
                Binding::Tensor(y),
            ],
            total,
            label,
        );
        y
    }
}

#[cfg(test)]
mod tests {
    use gpulut_tables::SearchSpace;
    use gpulut_tables::block::Block;

    use super::*;

    #[test]
    fn grid_spreads_over_y_past_the_limit() {
        assert_eq!(grid(10, 65535), [10, 1, 1]);
        assert_eq!(grid(0, 65535), [1, 1, 1]);
        assert_eq!(grid(70000, 65535), [65535, 2, 1]);
    }

    #[test]
    fn direct_se_block_is_one_dispatch_per_op() {
        let space = SearchSpace::moga_mbv3();
        // layer 2, choice 9: e6 k3 se, relu, residual
        let block = Block::new(
            space.choice_op(1, &space.choices()[9]),
            space.layer_input(1),
        );
        let net = Network::from_block(&block, 1).unwrap();
        let l = lower(
            &net,
            Framework::WgpuDirect,
            DeviceLimits {
                max_workgroups_per_dim: 65535,
                max_uniform_binding: 65536,
                pointwise: PointwiseStrategy::RegisterBlocked,
            },
        );
        let kernels: Vec<_> = l.steps.iter().map(|s| s.kernel).collect();
        use Kernel::*;
        assert_eq!(
            kernels,
            [
                Pointwise, Activation, Depthwise, Activation, Pool, Linear, Activation, Linear,
                Activation, Scale, Pointwise, Add
            ]
        );
        assert_eq!(l.input, 0);
        assert_eq!(l.tensors[l.output], block.output.len());
    }
}
