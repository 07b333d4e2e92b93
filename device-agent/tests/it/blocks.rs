//! Every choice block at several layer shapes, the stem and the head, on both frameworks,
//! against the CPU reference; and whole networks chained end to end.

use gpulut_agent::bench;
use gpulut_agent::framework::Framework;
use gpulut_agent::model::Network;
use gpulut_tables::SearchSpace;
use gpulut_tables::block::{Block, BlockOp};
use gpulut_tables::space::BlockPart;

use crate::kernels::{check, open_gpu};

/// Layers chosen to cover stride 1 and 2, residual and not, ReLU and h-swish:
/// layer 3 (56x56x24 -> 28x28x40, s2, relu), layer 5 (28x28x40 -> 28x28x40, s1, relu,
/// residual), layer 7 (14x14x80 -> 14x14x80, s1, hswish, residual), layer 12 (14x14x112 ->
/// 7x7x160, s2, hswish).
const LAYERS: [usize; 4] = [2, 4, 6, 11];

#[test]
fn all_twelve_choices_at_four_layer_shapes() {
    let gpu = open_gpu();
    let space = SearchSpace::moga_mbv3();
    let mut seen = (false, false, false, false); // s1, s2, residual, se
    for layer in LAYERS {
        for choice in space.choices() {
            let block = Block::new(space.choice_op(layer, choice), space.layer_input(layer));
            if let BlockOp::InvertedResidual { stride, se, .. } = block.op {
                seen.0 |= stride == 1;
                seen.1 |= stride == 2;
                seen.3 |= se.is_some();
            }
            seen.2 |= block.op.has_residual();
            let net = Network::from_block(&block, 5).expect("builds");
            for fw in Framework::ALL {
                check(&gpu, &net, fw, block.key.as_str());
            }
        }
    }
    assert_eq!(seen, (true, true, true, true), "coverage of the shapes");
}

#[test]
fn stem_and_head_parts() {
    let gpu = open_gpu();
    let space = SearchSpace::moga_mbv3();
    let fixed: Vec<_> = space
        .distinct_blocks()
        .into_iter()
        .filter(|b| b.part != BlockPart::Choice)
        .collect();
    assert_eq!(fixed.len(), 6, "stem conv, first block, 4 head parts");
    for b in fixed {
        let net = Network::from_block(&b.block, 9).expect("builds");
        for fw in Framework::ALL {
            check(&gpu, &net, fw, b.block.key.as_str());
        }
    }
}

#[test]
fn moga_a_end_to_end() {
    let gpu = open_gpu();
    let space = SearchSpace::moga_mbv3();
    let item = bench::arch_item(&space, "MoGA-A").expect("MoGA-A resolves");
    let net = Network::from_blocks(&item.blocks, 1).expect("builds");
    for fw in Framework::ALL {
        check(&gpu, &net, fw, "MoGA-A");
    }
}

#[test]
fn mobilenet_v3_large_end_to_end() {
    let gpu = open_gpu();
    let space = SearchSpace::moga_mbv3();
    let item = bench::arch_item(&space, "MobileNetV3-Large").expect("resolves");
    let net = Network::from_blocks(&item.blocks, 2).expect("builds");
    for fw in Framework::ALL {
        check(&gpu, &net, fw, "MobileNetV3-Large");
    }
}
