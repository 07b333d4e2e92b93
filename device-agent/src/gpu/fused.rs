//! Lowering for `wgpu-fused`: fewer, specialised dispatches.
//!
//! - Biases and activations live in the conv kernels' epilogues.
//! - Squeeze-excitation: the depthwise conv before it also writes per-invocation sums of its
//!   outputs, one dispatch turns those into the gate (pool, both 1x1 convs, h-sigmoid), and
//!   the project conv multiplies its input by the gate as it loads it; the scaled map is
//!   never written.
//! - The residual add is the project conv's last instruction.
//! - Register blocking with vec4 loads: pointwise convs compute 8 pixels x 16 (or 8, 4)
//!   channels per invocation, depthwise convs 7 or 8 adjacent outputs of a row (4 at stride
//!   2), the stem 4 pixels x 16 channels; weights sit in uniform buffers (see
//!   [`super::codegen`]). On GPUs (any adapter that is not a CPU) pointwise convs instead
//!   stage 64x32 tiles through workgroup memory.
//! - Every size is a pipeline-override constant, so loops have constant trip counts, and
//!   workgroup sizes follow the number of invocations a layer needs.
//!
//! Anything a specialised kernel cannot take (channels that are not multiples of 4, weights
//! past a uniform binding, a device with small uniform bindings, a squeeze-excitation wider
//! than the gate kernel's workgroup memory) falls back to general kernels, so every network
//! still runs.

use gpulut_tables::block::{Activation, Shape};

use crate::gpu::PointwiseStrategy;
use crate::model::{Conv, Depthwise, FullyConnected, Network, Op, SqueezeExcite};

use super::codegen::WCAP;
use super::lower::{
    Binding, DeviceLimits, Direct, GATE_UNIFORM_BYTES, Kernel, Lowered, Step, TensorId,
    UNIFORM_WEIGHTS_BYTES, act_code, grid,
};

/// Most input channels the generated dense conv takes: it unrolls over them, which suits the
/// stem (3 channels) and nothing wide.
const MAX_BLOCKED_CONV_CIN: u32 = 8;

/// Largest channel count and squeeze the SE gate kernel's workgroup arrays hold.
const SE_MAX_CHANNELS: u32 = 1024;
const SE_MAX_SQUEEZE: u32 = 1024;

pub(super) fn lower(net: &Network, limits: DeviceLimits) -> Lowered {
    let mut l = Lowered {
        tensors: Vec::new(),
        input: 0,
        output: 0,
        steps: Vec::new(),
    };
    let input = l.tensor(net.input.len());
    l.input = input;
    let mut uses = vec![0usize; net.nodes.len() + 1];
    for n in &net.nodes {
        uses[n.input] += 1;
        if let Op::Add { other } = n.op {
            uses[other] += 1;
        }
    }
    let mut values: Vec<TensorId> = vec![input];
    let mut f = Fused {
        l: &mut l,
        max_per_dim: limits.max_workgroups_per_dim,
        uniform_weights: limits.max_uniform_binding >= UNIFORM_WEIGHTS_BYTES,
        tiled_pointwise: limits.pointwise == PointwiseStrategy::WorkgroupTiled,
    };
    let mut pending_pool: Option<(usize, Pooled)> = None;
    let mut i = 0;
    while i < net.nodes.len() {
        let node = &net.nodes[i];
        let x = values[node.input];
        let label = format!("node {i} ({})", node.op.name());
        let next = net.nodes.get(i + 1);
        match &node.op {
            Op::SqueezeExcite(se) if se_fits(se, node.in_shape) => {
                let pooled = pending_pool
                    .take()
                    .filter(|(value, _)| *value == node.input)
                    .map(|(_, p)| p);
                let gate = f.se_gate(x, node.in_shape, se, pooled, &label);
                // Fuse the gate into the following pointwise conv when it is the only reader.
                match next {
                    Some(n)
                        if n.input == i + 1
                            && uses[i + 1] == 1
                            && pointwise_vec4(&n.op, n.in_shape) =>
                    {
                        let Op::Conv(c) = &n.op else {
                            unreachable!("checked by pointwise_vec4")
                        };
                        let (residual, skip) = residual_after(net, i + 1, &uses, &values);
                        let y = f.pointwise(
                            x,
                            n.in_shape,
                            c,
                            Some(gate),
                            residual,
                            &format!("node {} (pointwise)", i + 1),
                        );
                        values.push(y); // the SE value is never materialised
                        values.push(y);
                        if skip {
                            values.push(y);
                            i += 1;
                        }
                        i += 2;
                        continue;
                    }
                    _ => {
                        let y = f.scale(x, gate, node.in_shape, &label);
                        values.push(y);
                    }
                }
            }
            Op::SqueezeExcite(se) => {
                let y = f.squeeze_excite_unfused(x, node.in_shape, se, &label);
                values.push(y);
            }
            Op::Conv(c) if pointwise_vec4(&node.op, node.in_shape) => {
                let (residual, skip) = residual_after(net, i, &uses, &values);
                let y = f.pointwise(x, node.in_shape, c, None, residual, &label);
                values.push(y);
                if skip {
                    values.push(y);
                    i += 1;
                }
            }
            Op::Conv(c) if node.in_shape.h * node.in_shape.w == 1 && c.kernel == 1 => {
                let y = f.linear(x, &c.weight, &c.bias, c.act, &label);
                values.push(y);
            }
            Op::Conv(c) => {
                let y = f.conv(x, node.in_shape, node.out_shape, c, &label);
                values.push(y);
            }
            Op::Depthwise(d) if node.in_shape.c % 4 == 0 => {
                // Sum the outputs for a squeeze-excitation that reads only this map.
                let pool = matches!(next, Some(n) if n.input == i + 1
                    && uses[i + 1] == 1
                    && matches!(&n.op, Op::SqueezeExcite(se) if se_fits(se, n.in_shape)));
                let (y, pooled) = f.depthwise(x, node.in_shape, node.out_shape, d, pool, &label);
                if let Some(p) = pooled {
                    pending_pool = Some((i + 1, p));
                }
                values.push(y);
            }
            Op::Depthwise(d) => {
                let y = f.depthwise_unaligned(x, node.in_shape, node.out_shape, d, &label);
                values.push(y);
            }
            Op::GlobalAvgPool => {
                let y = f.pool(x, node.in_shape, &label);
                values.push(y);
            }
            Op::FullyConnected(fc) => {
                let y = f.fully_connected(x, fc, &label);
                values.push(y);
            }
            Op::Add { other } => {
                let y = f.add(x, values[*other], node.out_shape.len(), &label);
                values.push(y);
            }
        }
        i += 1;
    }
    l.output = values[net.output()];
    l
}

/// A 1x1 stride-1 conv the vec4 pointwise kernel takes.
fn pointwise_vec4(op: &Op, in_shape: Shape) -> bool {
    matches!(op, Op::Conv(c) if c.is_pointwise() && c.cin % 4 == 0 && c.cout % 4 == 0 && in_shape.h * in_shape.w > 1)
}

fn se_fits(se: &SqueezeExcite, shape: Shape) -> bool {
    shape.c % 4 == 0
        && se.channels <= SE_MAX_CHANNELS.min((GATE_UNIFORM_BYTES / 4) as u32)
        && se.squeeze.div_ceil(4) * 4 <= SE_MAX_SQUEEZE
}

/// When node `conv` (0-based) is followed by an Add that is the only reader of its output,
/// the tensor to add and `true` (the Add is absorbed).
fn residual_after(
    net: &Network,
    conv: usize,
    uses: &[usize],
    values: &[TensorId],
) -> (Option<TensorId>, bool) {
    match net.nodes.get(conv + 1) {
        Some(n) if n.input == conv + 1 && uses[conv + 1] == 1 => match n.op {
            Op::Add { other } => (Some(values[other]), true),
            _ => (None, false),
        },
        _ => (None, false),
    }
}

/// Pads `[rows][cols]` weights to `[rows][cols4 * 4]` so every row is whole vec4s.
fn pad_columns(weight: &[f32], cols: u32) -> Vec<f32> {
    let cols = cols as usize;
    let padded = cols.div_ceil(4) * 4;
    if padded == cols {
        return weight.to_vec();
    }
    let mut out = Vec::with_capacity(weight.len() / cols.max(1) * padded);
    for row in weight.chunks_exact(cols) {
        out.extend_from_slice(row);
        out.resize(out.len() + padded - cols, 0.0);
    }
    out
}

/// Vec4s of output channels per invocation: as many as divide the channel count, up to 4.
fn vec4s_per_invocation(c4: u32) -> u32 {
    [4, 2, 1].into_iter().find(|n| c4 % n == 0).unwrap_or(1)
}

/// Output pixels per invocation of the depthwise kernel: 7 or 8 at stride 1 (whichever wastes
/// fewer invocations at the row's end: 7 divides the 28, 14 and 7 wide maps), 4 at stride 2,
/// where the input span grows twice as fast and more would spill registers.
fn depthwise_row(width: u32, stride: u32) -> u32 {
    if stride != 1 {
        return 4;
    }
    let waste = |r: u32| width.div_ceil(r) * r - width;
    if waste(7) < waste(8) { 7 } else { 8 }
}

/// Workgroup size for `pixels` invocations per channel block: 64 where there is enough work,
/// less on small maps (7x7 has 49 pixels) so fewer invocations idle.
fn workgroup_for(pixels: u32) -> u32 {
    match pixels {
        0..=16 => 16,
        17..=32 => 32,
        _ => 64,
    }
}

/// Per-invocation sums a depthwise conv wrote for the squeeze-excitation after it.
#[derive(Debug, Clone, Copy)]
struct Pooled {
    partial: TensorId,
    rows: u32,
}

struct Fused<'a> {
    l: &'a mut Lowered,
    max_per_dim: u32,
    /// Whether weights may go to uniform buffers of `UNIFORM_WEIGHTS_BYTES`.
    uniform_weights: bool,
    /// Pointwise convs through the workgroup-memory tiled kernel instead of the
    /// register-blocked one.
    tiled_pointwise: bool,
}

impl Fused<'_> {
    fn push(
        &mut self,
        kernel: Kernel,
        constants: Vec<(&'static str, f64)>,
        bindings: Vec<Binding>,
        workgroups: [u32; 3],
        label: &str,
    ) {
        self.l.steps.push(Step {
            kernel,
            constants,
            bindings,
            workgroups,
            label: format!("{label}: {}", kernel.name()),
        });
    }

    /// A stand-in for a binding the kernel declares but this specialisation never reads.
    fn unused() -> Binding {
        Binding::Weights(vec![0.0; 4])
    }

    fn pointwise(
        &mut self,
        x: TensorId,
        i: Shape,
        c: &Conv,
        gate: Option<TensorId>,
        residual: Option<TensorId>,
        label: &str,
    ) -> TensorId {
        if self.tiled_pointwise {
            return self.pointwise_tiled(x, i, c, gate, residual, label);
        }
        let pixels = i.h * i.w;
        let cout4 = c.cout / 4;
        // 8 pixels x 16, 8 or 4 channels: each weight loaded feeds 8 FMAs. Measured on
        // lavapipe, 8 pixels beat 4 by about 10% even though the accumulators spill.
        let per_pixel = 8;
        let blocks = match cout4 {
            n if n % 4 == 0 => 4,
            n if n % 2 == 0 => 2,
            _ => 1,
        };
        if !self.uniform_weights || c.cin * blocks > WCAP {
            let o = Shape::new(i.h, i.w, c.cout);
            let y = match gate {
                Some(g) => {
                    let scaled = self.scale(x, g, i, label);
                    self.conv(scaled, i, o, c, label)
                }
                None => self.conv(x, i, o, c, label),
            };
            return match residual {
                Some(r) => self.add(y, r, o.len(), label),
                None => y,
            };
        }
        let y = self.l.tensor(u64::from(pixels) * u64::from(c.cout));
        let invocations = pixels.div_ceil(per_pixel);
        let wg = workgroup_for(invocations);
        let constants = vec![
            ("PIXELS", f64::from(pixels)),
            ("CIN4", f64::from(c.cin / 4)),
            ("COUT4", f64::from(cout4)),
            ("ACT", f64::from(act_code(c.act))),
            ("HAS_GATE", f64::from(u8::from(gate.is_some()))),
            ("HAS_RESIDUAL", f64::from(u8::from(residual.is_some()))),
            ("WG", f64::from(wg)),
        ];
        let kernel = Kernel::FusedPointwise {
            pixels: per_pixel as u8,
            blocks: blocks as u8,
        };
        let block_count = cout4 / blocks;
        let block_floats = (blocks * 4) as usize;
        let per_dispatch = (WCAP / (c.cin * blocks)).max(1);
        let cout = c.cout as usize;
        let mut block0 = 0;
        while block0 < block_count {
            let n = per_dispatch.min(block_count - block0);
            // [block][cin][blocks vec4s]
            let mut w = Vec::with_capacity(n as usize * c.cin as usize * block_floats);
            for b in block0..block0 + n {
                let first = b as usize * block_floats;
                for ci in 0..c.cin as usize {
                    w.extend_from_slice(&c.weight[ci * cout + first..][..block_floats]);
                }
            }
            let bindings = vec![
                Binding::Uniform(vec![block0]),
                Binding::Tensor(x),
                Binding::UniformWeights(w),
                Binding::Weights(c.bias.clone()),
                gate.map_or_else(
                    || Binding::Uniform(vec![0; (GATE_UNIFORM_BYTES / 4) as usize]),
                    Binding::TensorUniform,
                ),
                residual.map_or_else(Self::unused, Binding::Tensor),
                Binding::Tensor(y),
            ];
            let groups = [invocations.div_ceil(wg), n, 1];
            self.push(kernel, constants.clone(), bindings, groups, label);
            block0 += n;
        }
        y
    }

    /// The register-blocked dense conv (the stem): weights in uniform buffers, split over
    /// dispatches by output-channel block when they pass one binding.
    fn conv_blocked(
        &mut self,
        x: TensorId,
        i: Shape,
        o: Shape,
        c: &Conv,
        blocks: u32,
        label: &str,
    ) -> TensorId {
        let y = self.l.tensor(o.len());
        let row = 4;
        let cout4 = c.cout / 4;
        let invocations = o.h * o.w.div_ceil(row);
        let wg = workgroup_for(invocations);
        let constants = vec![
            ("H", f64::from(i.h)),
            ("W", f64::from(i.w)),
            ("HO", f64::from(o.h)),
            ("WO", f64::from(o.w)),
            ("COUT4", f64::from(cout4)),
            ("ACT", f64::from(act_code(c.act))),
            ("WG", f64::from(wg)),
        ];
        let kernel = Kernel::FusedConvBlocked {
            kernel: c.kernel as u8,
            stride: c.stride as u8,
            cin: c.cin as u8,
            row: row as u8,
            blocks: blocks as u8,
        };
        let taps = (c.kernel * c.kernel * c.cin) as usize;
        let block_count = cout4 / blocks;
        let block_floats = (blocks * 4) as usize;
        let per_dispatch = (WCAP / (taps as u32 * blocks)).max(1);
        let cout = c.cout as usize;
        let mut block0 = 0;
        while block0 < block_count {
            let n = per_dispatch.min(block_count - block0);
            // [block][ky][kx][ci][blocks vec4s]; the model's rows are [ky][kx][ci].
            let mut w = Vec::with_capacity(n as usize * taps * block_floats);
            for b in block0..block0 + n {
                let first = b as usize * block_floats;
                for t in 0..taps {
                    w.extend_from_slice(&c.weight[t * cout + first..][..block_floats]);
                }
            }
            let bindings = vec![
                Binding::Uniform(vec![block0]),
                Binding::Tensor(x),
                Binding::UniformWeights(w),
                Binding::Weights(c.bias.clone()),
                Binding::Tensor(y),
            ];
            let groups = [invocations.div_ceil(wg), n, 1];
            self.push(kernel, constants.clone(), bindings, groups, label);
            block0 += n;
        }
        y
    }

    fn pointwise_tiled(
        &mut self,
        x: TensorId,
        i: Shape,
        c: &Conv,
        gate: Option<TensorId>,
        residual: Option<TensorId>,
        label: &str,
    ) -> TensorId {
        let pixels = i.h * i.w;
        let cout4 = c.cout / 4;
        let y = self.l.tensor(u64::from(pixels) * u64::from(c.cout));
        let constants = vec![
            ("PIXELS", f64::from(pixels)),
            ("CIN4", f64::from(c.cin / 4)),
            ("COUT4", f64::from(cout4)),
            ("ACT", f64::from(act_code(c.act))),
            ("HAS_GATE", f64::from(u8::from(gate.is_some()))),
            ("HAS_RESIDUAL", f64::from(u8::from(residual.is_some()))),
        ];
        let bindings = vec![
            Binding::Tensor(x),
            Binding::Weights(c.weight.clone()),
            Binding::Weights(c.bias.clone()),
            gate.map_or_else(Self::unused, Binding::Tensor),
            residual.map_or_else(Self::unused, Binding::Tensor),
            Binding::Tensor(y),
        ];
        // 64 pixels x 8 vec4s of channels per workgroup.
        let groups = [pixels.div_ceil(64), cout4.div_ceil(8), 1];
        self.push(
            Kernel::FusedPointwiseTiled,
            constants,
            bindings,
            groups,
            label,
        );
        y
    }

    fn conv(&mut self, x: TensorId, i: Shape, o: Shape, c: &Conv, label: &str) -> TensorId {
        let blocks = 4;
        let taps = c.kernel * c.kernel * c.cin;
        if self.uniform_weights
            && c.cin <= MAX_BLOCKED_CONV_CIN
            && c.cout % (4 * blocks) == 0
            && taps * blocks <= WCAP
        {
            return self.conv_blocked(x, i, o, c, blocks, label);
        }
        let y = self.l.tensor(o.len());
        let cout4 = c.cout.div_ceil(4);
        let cpt4 = vec4s_per_invocation(cout4);
        let pixels = o.h * o.w;
        let wg = workgroup_for(pixels);
        let constants = vec![
            ("H", f64::from(i.h)),
            ("W", f64::from(i.w)),
            ("CIN", f64::from(c.cin)),
            ("HO", f64::from(o.h)),
            ("WO", f64::from(o.w)),
            ("COUT", f64::from(c.cout)),
            ("COUT4", f64::from(cout4)),
            ("K", f64::from(c.kernel)),
            ("STRIDE", f64::from(c.stride)),
            ("CPT4", f64::from(cpt4)),
            ("ACT", f64::from(act_code(c.act))),
            ("WG", f64::from(wg)),
        ];
        let bindings = vec![
            Binding::Tensor(x),
            Binding::Weights(pad_columns(&c.weight, c.cout)),
            Binding::Weights(pad_columns(&c.bias, c.cout)),
            Binding::Tensor(y),
        ];
        let groups = [pixels.div_ceil(wg), cout4 / cpt4, 1];
        self.push(Kernel::FusedConv, constants, bindings, groups, label);
        y
    }

    fn depthwise(
        &mut self,
        x: TensorId,
        i: Shape,
        o: Shape,
        d: &Depthwise,
        pool: bool,
        label: &str,
    ) -> (TensorId, Option<Pooled>) {
        let taps = d.kernel * d.kernel;
        if !self.uniform_weights || taps > WCAP {
            return (self.depthwise_unaligned(x, i, o, d, label), None);
        }
        let y = self.l.tensor(o.len());
        let c4 = i.c / 4;
        let row = depthwise_row(o.w, d.stride);
        let invocations = o.h * o.w.div_ceil(row);
        let wg = workgroup_for(invocations);
        let constants = vec![
            ("H", f64::from(i.h)),
            ("W", f64::from(i.w)),
            ("C4", f64::from(c4)),
            ("HO", f64::from(o.h)),
            ("WO", f64::from(o.w)),
            ("ACT", f64::from(act_code(d.act))),
            ("WG", f64::from(wg)),
        ];
        let kernel = Kernel::FusedDepthwise {
            kernel: d.kernel as u8,
            stride: d.stride as u8,
            row: row as u8,
            pool,
        };
        let pooled = pool.then(|| Pooled {
            rows: invocations,
            partial: self.l.tensor(u64::from(invocations) * u64::from(i.c)),
        });
        let per_dispatch = (WCAP / taps).max(1);
        let c = i.c as usize;
        let mut g0 = 0;
        while g0 < c4 {
            let n = per_dispatch.min(c4 - g0);
            // [group][ky][kx] vec4s
            let mut w = Vec::with_capacity((n * taps * 4) as usize);
            for g in g0..g0 + n {
                for t in 0..taps as usize {
                    w.extend_from_slice(&d.weight[t * c + g as usize * 4..][..4]);
                }
            }
            let mut bindings = vec![
                Binding::Uniform(vec![g0]),
                Binding::Tensor(x),
                Binding::UniformWeights(w),
                Binding::Weights(d.bias.clone()),
                Binding::Tensor(y),
            ];
            if let Some(p) = &pooled {
                bindings.push(Binding::Tensor(p.partial));
            }
            let groups = [invocations.div_ceil(wg), n, 1];
            self.push(kernel, constants.clone(), bindings, groups, label);
            g0 += n;
        }
        (y, pooled)
    }

    /// Depthwise conv on channels that are not whole vec4s: the direct kernel and activation.
    fn depthwise_unaligned(
        &mut self,
        x: TensorId,
        i: Shape,
        o: Shape,
        d: &Depthwise,
        label: &str,
    ) -> TensorId {
        self.as_direct().depthwise(x, i, o, d, label)
    }

    fn direct(&mut self, kernel: Kernel, bindings: Vec<Binding>, threads: u64, label: &str) {
        self.as_direct().step(kernel, bindings, threads, label);
    }

    /// The direct lowering over the same steps, for ops this one does not fuse.
    fn as_direct(&mut self) -> Direct<'_> {
        Direct {
            l: self.l,
            max_per_dim: self.max_per_dim,
        }
    }

    fn linear(
        &mut self,
        x: TensorId,
        weight: &[f32],
        bias: &[f32],
        act: Activation,
        label: &str,
    ) -> TensorId {
        let cout = bias.len() as u32;
        let cin = (weight.len() / bias.len().max(1)) as u32;
        let cout4 = cout.div_ceil(4);
        let y = self.l.tensor(u64::from(cout));
        let constants = vec![
            ("CIN", f64::from(cin)),
            ("COUT", f64::from(cout)),
            ("COUT4", f64::from(cout4)),
            ("ACT", f64::from(act_code(act))),
            ("WG", 64.0),
        ];
        let bindings = vec![
            Binding::Tensor(x),
            Binding::Weights(pad_columns(weight, cout)),
            Binding::Weights(pad_columns(bias, cout)),
            Binding::Tensor(y),
        ];
        let groups = grid(u64::from(cout4.div_ceil(64)), self.max_per_dim);
        self.push(Kernel::FusedLinear, constants, bindings, groups, label);
        y
    }

    fn fully_connected(&mut self, x: TensorId, fc: &FullyConnected, label: &str) -> TensorId {
        self.linear(x, &fc.weight, &fc.bias, Activation::None, label)
    }

    fn pool(&mut self, x: TensorId, i: Shape, label: &str) -> TensorId {
        let y = self.l.tensor(u64::from(i.c));
        if i.c % 4 == 0 {
            let c4 = i.c / 4;
            let constants = vec![
                ("PIXELS", f64::from(i.h * i.w)),
                ("C4", f64::from(c4)),
                ("WG", 64.0),
            ];
            let groups = grid(u64::from(c4.div_ceil(64)), self.max_per_dim);
            self.push(
                Kernel::FusedPool,
                constants,
                vec![Binding::Tensor(x), Binding::Tensor(y)],
                groups,
                label,
            );
        } else {
            self.direct(
                Kernel::Pool,
                vec![
                    Binding::Uniform(vec![i.h * i.w, i.c]),
                    Binding::Tensor(x),
                    Binding::Tensor(y),
                ],
                u64::from(i.c),
                label,
            );
        }
        y
    }

    fn se_gate(
        &mut self,
        x: TensorId,
        i: Shape,
        se: &SqueezeExcite,
        pooled: Option<Pooled>,
        label: &str,
    ) -> TensorId {
        // At least the gate uniform's size: the project conv binds that much.
        let gate = self
            .l
            .tensor(u64::from(se.channels).max(GATE_UNIFORM_BYTES / 4));
        let c4 = se.channels / 4;
        let s4 = se.squeeze.div_ceil(4);
        let (source, rows) = match pooled {
            Some(p) => (p.partial, p.rows),
            None => (x, i.h * i.w),
        };
        let constants = vec![
            ("ROWS", f64::from(rows)),
            ("COUNT", f64::from(i.h * i.w)),
            ("C4", f64::from(c4)),
            ("S4", f64::from(s4)),
            ("ACT", f64::from(act_code(se.act))),
        ];
        // The expanding weights get zero rows up to S4 * 4, matching the padded squeeze.
        let mut expand = se.expand_weight.clone();
        expand.resize((s4 * 4 * se.channels) as usize, 0.0);
        let bindings = vec![
            Binding::Tensor(source),
            Binding::Weights(pad_columns(&se.reduce_weight, se.squeeze)),
            Binding::Weights(pad_columns(&se.reduce_bias, se.squeeze)),
            Binding::Weights(expand),
            Binding::Weights(se.expand_bias.clone()),
            Binding::Tensor(gate),
        ];
        self.push(Kernel::FusedSeGate, constants, bindings, [1, 1, 1], label);
        gate
    }

    fn scale(&mut self, x: TensorId, gate: TensorId, i: Shape, label: &str) -> TensorId {
        let total = i.len();
        let y = self.l.tensor(total);
        self.direct(
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

    /// Squeeze-excitation the gate kernel cannot take: pool, two linears, scale.
    fn squeeze_excite_unfused(
        &mut self,
        x: TensorId,
        i: Shape,
        se: &SqueezeExcite,
        label: &str,
    ) -> TensorId {
        let pooled = self.pool(x, i, label);
        let squeezed = self.linear(pooled, &se.reduce_weight, &se.reduce_bias, se.act, label);
        let gate = self.linear(
            squeezed,
            &se.expand_weight,
            &se.expand_bias,
            Activation::Hsigmoid,
            label,
        );
        self.scale(x, gate, i, label)
    }

    fn add(&mut self, a: TensorId, b: TensorId, total: u64, label: &str) -> TensorId {
        let y = self.l.tensor(total);
        self.direct(
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
    fn se_block_fuses_to_four_dispatches() {
        let space = SearchSpace::moga_mbv3();
        // layer 2, choice 9: e6 k3 se, relu, residual
        let block = Block::new(
            space.choice_op(1, &space.choices()[9]),
            space.layer_input(1),
        );
        let net = Network::from_block(&block, 1).unwrap();
        let l = lower(
            &net,
            DeviceLimits {
                max_workgroups_per_dim: 65535,
                max_uniform_binding: 65536,
                pointwise: PointwiseStrategy::RegisterBlocked,
            },
        );
        let kernels: Vec<_> = l.steps.iter().map(|s| s.kernel).collect();
        assert_eq!(
            kernels,
            [
                Kernel::FusedPointwise {
                    pixels: 8,
                    blocks: 4
                },
                Kernel::FusedDepthwise {
                    kernel: 3,
                    stride: 1,
                    row: 8,
                    pool: true
                },
                Kernel::FusedSeGate,
                Kernel::FusedPointwise {
                    pixels: 8,
                    blocks: 2
                }
            ]
        );
        let project = &l.steps[3];
        let has = |name: &str| {
            project
                .constants
                .iter()
                .any(|(n, v)| *n == name && *v == 1.0)
        };
        assert!(has("HAS_GATE") && has("HAS_RESIDUAL"));
        assert_eq!(l.tensors[l.output], block.output.len());
    }

    #[test]
    fn depthwise_rows_fit_the_map() {
        assert_eq!(depthwise_row(56, 1), 8);
        assert_eq!(depthwise_row(112, 1), 8);
        assert_eq!(depthwise_row(28, 1), 7);
        assert_eq!(depthwise_row(14, 1), 7);
        assert_eq!(depthwise_row(7, 1), 7);
        assert_eq!(depthwise_row(15, 1), 8);
        assert_eq!(depthwise_row(56, 2), 4);
    }

    #[test]
    fn padding_columns_keeps_rows() {
        assert_eq!(
            pad_columns(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3),
            [1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0]
        );
        assert_eq!(pad_columns(&[1.0; 8], 4), [1.0; 8]);
        assert_eq!(vec4s_per_invocation(6), 2);
        assert_eq!(vec4s_per_invocation(10), 2);
        assert_eq!(vec4s_per_invocation(40), 4);
        assert_eq!(vec4s_per_invocation(5), 1);
    }
}
