//! Interchange with other tools' latency tables: the keys of Once-for-All's (OFA) lookup tables,
//! so tools that already read OFA's YAML tables can read any enrolled phone's.
//!
//! OFA names the MobileNetV3 parts `Conv` (stem), `expanded_conv` (every inverted residual, and
//! the first separable block), `Conv_1` (the head's expanding 1x1 conv), `AvgPool2D`, `Conv_2`
//! (the 1x1 conv on the pooled vector) and `Logits` (the classifier), with shapes as HxWxC.

use crate::block::{Activation, Block, BlockOp};
use crate::space::BlockPart;

/// The OFA key of a block, given its part of the network and its index among the blocks of
/// that part (0-based). None for a block OFA's MobileNetV3 tables have no name for.
pub fn ofa_key(block: &Block, part: BlockPart, index_in_part: usize) -> Option<String> {
    let io = format!("input:{}-output:{}", block.input, block.output);
    match (block.op, part) {
        (BlockOp::Conv { .. }, BlockPart::Stem) => Some(format!("Conv-{io}")),
        (
            BlockOp::DwSep {
                kernel,
                stride,
                act,
                ..
            },
            _,
        ) => Some(format!(
            "expanded_conv-{io}-expand:{}-kernel:{kernel}-stride:{stride}-idskip:0-se:0-hs:{}",
            block.input.c,
            u8::from(act == Activation::Hswish)
        )),
        (
            BlockOp::InvertedResidual {
                kernel,
                stride,
                hidden,
                se,
                act,
                ..
            },
            _,
        ) => Some(format!(
            "expanded_conv-{io}-expand:{hidden}-kernel:{kernel}-stride:{stride}-idskip:{}-se:{}-hs:{}",
            u8::from(block.op.has_residual()),
            u8::from(se.is_some()),
            u8::from(act == Activation::Hswish)
        )),
        (BlockOp::Conv { .. }, BlockPart::Head) => Some(format!(
            "Conv_{}-{io}",
            if index_in_part == 0 { 1 } else { 2 }
        )),
        (BlockOp::GlobalAvgPool, _) => Some(format!("AvgPool2D-{io}")),
        (BlockOp::Fc { cin, cout, .. }, _) => Some(format!("Logits-input:1x1x{cin}-output:{cout}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::SearchSpace;

    #[test]
    fn keys_follow_ofa_spelling() {
        let space = SearchSpace::moga_mbv3();
        let blocks = space.distinct_blocks();
        let mut per_part = std::collections::HashMap::new();
        let keys: Vec<String> = blocks
            .iter()
            .map(|b| {
                let i = per_part.entry(b.part).or_insert(0usize);
                let k = ofa_key(&b.block, b.part, *i).unwrap();
                *i += 1;
                k
            })
            .collect();
        assert_eq!(keys[0], "Conv-input:224x224x3-output:112x112x16");
        assert!(keys.contains(
            &"expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:1-hs:0".to_string()
        ));
        assert!(keys.contains(&"Conv_1-input:7x7x160-output:7x7x960".to_string()));
        assert!(keys.contains(&"AvgPool2D-input:7x7x960-output:1x1x960".to_string()));
        assert!(keys.contains(&"Conv_2-input:1x1x960-output:1x1x1280".to_string()));
        assert_eq!(keys.last().unwrap(), "Logits-input:1x1x1280-output:1000");
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "one OFA key per block");
    }
}
