//! Every op of both frameworks against the CPU reference, on shapes chosen to hit the edges:
//! odd sizes with stride 2, channel counts that are and are not multiples of 4, every
//! kernel size and activation.

use gpulut_agent::framework::Framework;
use gpulut_agent::gpu::{BackendChoice, Gpu, PointwiseStrategy};
use gpulut_agent::model::{Conv, Depthwise, FullyConnected, Network, Node, Op, Rng, SqueezeExcite};
use gpulut_agent::reference::{self, Comparison};
use gpulut_tables::block::{Activation, Shape};

pub fn open_gpu() -> Gpu {
    Gpu::open(BackendChoice::Vulkan).expect("a Vulkan adapter (lavapipe in CI)")
}

/// Runs `net` on the GPU with `framework` and compares with the reference; panics with the
/// error when it does not match.
pub fn check(gpu: &Gpu, net: &Network, framework: Framework, what: &str) -> Comparison {
    check_with(gpu, net, framework, PointwiseStrategy::Auto, what)
}

pub fn check_with(
    gpu: &Gpu,
    net: &Network,
    framework: Framework,
    pointwise: PointwiseStrategy,
    what: &str,
) -> Comparison {
    let input = net.random_input(11);
    let expected = reference::run(net, &input).expect("reference runs");
    let program = gpu
        .prepare_with(net, framework, pointwise)
        .unwrap_or_else(|e| panic!("{what} on {framework}: {e}"));
    let got = program
        .infer(&input)
        .unwrap_or_else(|e| panic!("{what} on {framework}: {e}"));
    let cmp = Comparison::of(&got, &expected);
    assert!(
        cmp.passes(),
        "{what} on {framework}: relative error {:e} (max abs {:e}, scale {:e})",
        cmp.relative_error,
        cmp.max_abs_error,
        cmp.scale
    );
    cmp
}

fn random(rng: &mut Rng, n: u32, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(bound)).collect()
}

fn single(op: Op, in_shape: Shape, out_shape: Shape) -> Network {
    Network {
        input: in_shape,
        nodes: vec![Node {
            op,
            input: 0,
            in_shape,
            out_shape,
        }],
    }
}

fn conv_net(i: Shape, kernel: u32, stride: u32, cout: u32, act: Activation) -> Network {
    let mut rng = Rng::new(u64::from(kernel * 100 + cout));
    let fan_in = kernel * kernel * i.c;
    let bound = (3.0 / fan_in as f32).sqrt();
    let op = Op::Conv(Conv {
        kernel,
        stride,
        cin: i.c,
        cout,
        act,
        weight: random(&mut rng, fan_in * cout, bound),
        bias: random(&mut rng, cout, 0.5),
    });
    single(
        op,
        i,
        Shape::new(i.h.div_ceil(stride), i.w.div_ceil(stride), cout),
    )
}

fn depthwise_net(i: Shape, kernel: u32, stride: u32, act: Activation) -> Network {
    let mut rng = Rng::new(u64::from(kernel * 10 + stride));
    let bound = (3.0 / (kernel * kernel) as f32).sqrt();
    let op = Op::Depthwise(Depthwise {
        kernel,
        stride,
        channels: i.c,
        act,
        weight: random(&mut rng, kernel * kernel * i.c, bound),
        bias: random(&mut rng, i.c, 0.5),
    });
    single(
        op,
        i,
        Shape::new(i.h.div_ceil(stride), i.w.div_ceil(stride), i.c),
    )
}

fn frameworks() -> [Framework; 2] {
    Framework::ALL
}

#[test]
fn dense_conv_general_kernel_and_stride() {
    let gpu = open_gpu();
    for fw in frameworks() {
        for (i, k, s, cout, act) in [
            (Shape::new(9, 7, 5), 5, 1, 6, Activation::Relu),
            (Shape::new(7, 9, 3), 3, 2, 16, Activation::Hswish),
            (Shape::new(8, 8, 4), 3, 2, 8, Activation::None),
            (Shape::new(5, 6, 8), 1, 2, 12, Activation::Relu),
            (Shape::new(224, 224, 3), 3, 2, 16, Activation::Hswish),
        ] {
            check(
                &gpu,
                &conv_net(i, k, s, cout, act),
                fw,
                &format!("conv {i} k{k} s{s} -> {cout} {act}"),
            );
        }
    }
}

#[test]
fn pointwise_conv_every_activation() {
    let gpu = open_gpu();
    for fw in frameworks() {
        for (i, cout, act) in [
            (Shape::new(13, 11, 24), 40, Activation::Relu),
            (Shape::new(7, 7, 160), 960, Activation::Hswish),
            (Shape::new(5, 3, 10), 6, Activation::None),
            (Shape::new(14, 14, 80), 112, Activation::Hsigmoid),
            (Shape::new(1, 1, 960), 1280, Activation::Hswish),
            (Shape::new(3, 3, 7), 3, Activation::Relu),
        ] {
            check(
                &gpu,
                &conv_net(i, 1, 1, cout, act),
                fw,
                &format!("pointwise {i} -> {cout} {act}"),
            );
        }
    }
}

/// Both pointwise kernels of `wgpu-fused`, whichever the adapter would pick, including the
/// gate and residual epilogues and tile edges (pixels and channels not multiples of the tile).
#[test]
fn pointwise_kernels_both_strategies_with_gate_and_residual() {
    let gpu = open_gpu();
    let space = gpulut_tables::SearchSpace::moga_mbv3();
    let blocks = [
        (12, 9), // 7x7x160, e6 k3 se, residual
        (2, 10), // 56x56x24 -> 28x28x40, e6 k5 se
        (5, 4),  // 28x28x40 -> 14x14x80, e6 k5
    ];
    for strategy in [
        PointwiseStrategy::RegisterBlocked,
        PointwiseStrategy::WorkgroupTiled,
    ] {
        for (i, cout, act) in [
            (Shape::new(13, 11, 24), 40, Activation::Relu),
            (Shape::new(3, 3, 20), 12, Activation::Hswish),
        ] {
            check_with(
                &gpu,
                &conv_net(i, 1, 1, cout, act),
                Framework::WgpuFused,
                strategy,
                &format!("pointwise {i} -> {cout} {strategy:?}"),
            );
        }
        for (layer, choice) in blocks {
            let block = gpulut_tables::block::Block::new(
                space.choice_op(layer, &space.choices()[choice]),
                space.layer_input(layer),
            );
            let net = Network::from_block(&block, 3).expect("builds");
            check_with(
                &gpu,
                &net,
                Framework::WgpuFused,
                strategy,
                &format!("{} {strategy:?}", block.key),
            );
        }
    }
}

#[test]
fn depthwise_conv_kernels_3_5_7_strides_1_2() {
    let gpu = open_gpu();
    for fw in frameworks() {
        for k in [3, 5, 7] {
            for s in [1, 2] {
                for (i, act) in [
                    (Shape::new(15, 13, 8), Activation::Relu),
                    (Shape::new(14, 14, 12), Activation::Hswish),
                    (Shape::new(7, 7, 6), Activation::None),
                ] {
                    check(
                        &gpu,
                        &depthwise_net(i, k, s, act),
                        fw,
                        &format!("depthwise {i} k{k} s{s} {act}"),
                    );
                }
            }
        }
    }
}

fn se_net(i: Shape, squeeze: u32, act: Activation) -> Network {
    let mut rng = Rng::new(u64::from(squeeze));
    let c = i.c;
    let op = Op::SqueezeExcite(SqueezeExcite {
        channels: c,
        squeeze,
        act,
        reduce_weight: random(&mut rng, c * squeeze, (6.0 / c as f32).sqrt()),
        reduce_bias: random(&mut rng, squeeze, 0.1),
        expand_weight: random(&mut rng, squeeze * c, (3.0 / squeeze as f32).sqrt()),
        expand_bias: random(&mut rng, c, 0.1),
    });
    single(op, i, i)
}

#[test]
fn squeeze_excitation() {
    let gpu = open_gpu();
    for fw in frameworks() {
        for (i, squeeze, act) in [
            (Shape::new(9, 9, 24), 6, Activation::Relu),
            (Shape::new(28, 28, 72), 18, Activation::Relu),
            (Shape::new(7, 7, 960), 240, Activation::Hswish),
            (Shape::new(5, 4, 10), 3, Activation::Hswish),
        ] {
            check(
                &gpu,
                &se_net(i, squeeze, act),
                fw,
                &format!("se {i} squeeze {squeeze} {act}"),
            );
        }
    }
}

#[test]
fn global_pool_and_fully_connected() {
    let gpu = open_gpu();
    let mut rng = Rng::new(3);
    for fw in frameworks() {
        for i in [
            Shape::new(7, 7, 160),
            Shape::new(3, 5, 7),
            Shape::new(56, 56, 24),
        ] {
            check(
                &gpu,
                &single(Op::GlobalAvgPool, i, Shape::new(1, 1, i.c)),
                fw,
                &format!("pool {i}"),
            );
        }
        for (cin, cout) in [(1280, 1000), (10, 7), (16, 4)] {
            let op = Op::FullyConnected(FullyConnected {
                cin,
                cout,
                weight: random(&mut rng, cin * cout, (3.0 / cin as f32).sqrt()),
                bias: random(&mut rng, cout, 0.1),
            });
            check(
                &gpu,
                &single(op, Shape::new(1, 1, cin), Shape::new(1, 1, cout)),
                fw,
                &format!("fc {cin} -> {cout}"),
            );
        }
    }
}

#[test]
fn residual_add() {
    let gpu = open_gpu();
    let i = Shape::new(6, 5, 12);
    let mut net = conv_net(i, 1, 1, 12, Activation::Relu);
    net.nodes.push(Node {
        op: Op::Add { other: 0 },
        input: 1,
        in_shape: i,
        out_shape: i,
    });
    for fw in frameworks() {
        check(&gpu, &net, fw, "pointwise + residual add");
    }
}
