//! The CPU reference: plain Rust for every op of [`crate::model`], written for clarity, not
//! speed. A kernel's output counts only once it matches these functions.
//!
//! Sums are accumulated in f64 and rounded to f32 once per output, so the reference sits
//! closer to the exact result than any f32 kernel; the kernels' own rounding (about 1e-7
//! relative per op) is what [`TOLERANCE`] has to absorb.

use gpulut_tables::block::{Activation, Shape};
use serde::Serialize;

use crate::model::{Conv, Depthwise, FullyConnected, Network, Op, SqueezeExcite};

/// Largest accepted `max |gpu - reference| / max |reference|`. f32 kernels that sum in a
/// different order differ from the f64-accumulated reference by about 1e-6 of the output
/// scale even after a whole network; an indexing or fusion bug gives errors of order 1.
pub const TOLERANCE: f64 = 1e-4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the input has {got} values, the network takes {expected}")]
    InputLength { expected: u64, got: usize },
}

pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Hswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Hsigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// Input coordinate of output `o` at tap `t` with padding `k / 2`, or None in the padding.
fn tap(o: u32, t: u32, stride: u32, kernel: u32, size: u32) -> Option<usize> {
    let i = i64::from(o) * i64::from(stride) + i64::from(t) - i64::from(kernel / 2);
    (0..i64::from(size)).contains(&i).then_some(i as usize)
}

/// Dense kxk conv (also 1x1), HWC in and out.
pub fn conv2d(input: &[f32], shape: Shape, conv: &Conv) -> Vec<f32> {
    let (k, s) = (conv.kernel, conv.stride);
    let (cin, cout) = (conv.cin as usize, conv.cout as usize);
    let (ho, wo) = (shape.h.div_ceil(s), shape.w.div_ceil(s));
    let mut out = Vec::with_capacity(ho as usize * wo as usize * cout);
    let mut acc = vec![0f64; cout];
    for oy in 0..ho {
        for ox in 0..wo {
            for (a, b) in acc.iter_mut().zip(&conv.bias) {
                *a = f64::from(*b);
            }
            for ky in 0..k {
                let Some(iy) = tap(oy, ky, s, k, shape.h) else {
                    continue;
                };
                for kx in 0..k {
                    let Some(ix) = tap(ox, kx, s, k, shape.w) else {
                        continue;
                    };
                    let pixel = &input[(iy * shape.w as usize + ix) * cin..][..cin];
                    let taps = &conv.weight[((ky * k + kx) as usize * cin) * cout..][..cin * cout];
                    for (x, row) in pixel.iter().zip(taps.chunks_exact(cout)) {
                        let x = f64::from(*x);
                        for (a, w) in acc.iter_mut().zip(row) {
                            *a += x * f64::from(*w);
                        }
                    }
                }
            }
            out.extend(acc.iter().map(|a| activate(*a as f32, conv.act)));
        }
    }
    out
}

/// Depthwise kxk conv, HWC.
pub fn depthwise(input: &[f32], shape: Shape, dw: &Depthwise) -> Vec<f32> {
    let (k, s, c) = (dw.kernel, dw.stride, dw.channels as usize);
    let (ho, wo) = (shape.h.div_ceil(s), shape.w.div_ceil(s));
    let mut out = Vec::with_capacity(ho as usize * wo as usize * c);
    let mut acc = vec![0f64; c];
    for oy in 0..ho {
        for ox in 0..wo {
            for (a, b) in acc.iter_mut().zip(&dw.bias) {
                *a = f64::from(*b);
            }
            for ky in 0..k {
                let Some(iy) = tap(oy, ky, s, k, shape.h) else {
                    continue;
                };
                for kx in 0..k {
                    let Some(ix) = tap(ox, kx, s, k, shape.w) else {
                        continue;
                    };
                    let pixel = &input[(iy * shape.w as usize + ix) * c..][..c];
                    let taps = &dw.weight[(ky * k + kx) as usize * c..][..c];
                    for ((a, x), w) in acc.iter_mut().zip(pixel).zip(taps) {
                        *a += f64::from(*x) * f64::from(*w);
                    }
                }
            }
            out.extend(acc.iter().map(|a| activate(*a as f32, dw.act)));
        }
    }
    out
}

/// Mean over all pixels, per channel.
pub fn global_avg_pool(input: &[f32], shape: Shape) -> Vec<f32> {
    let c = shape.c as usize;
    let mut acc = vec![0f64; c];
    for pixel in input.chunks_exact(c) {
        for (a, x) in acc.iter_mut().zip(pixel) {
            *a += f64::from(*x);
        }
    }
    let n = f64::from(shape.h) * f64::from(shape.w);
    acc.iter().map(|a| (a / n) as f32).collect()
}

/// `y = x W + b` with `W` as `[cin][cout]`, then `act`.
fn linear(x: &[f32], weight: &[f32], bias: &[f32], act: Activation) -> Vec<f32> {
    let cout = bias.len();
    let mut acc: Vec<f64> = bias.iter().map(|b| f64::from(*b)).collect();
    for (x, row) in x.iter().zip(weight.chunks_exact(cout)) {
        for (a, w) in acc.iter_mut().zip(row) {
            *a += f64::from(*x) * f64::from(*w);
        }
    }
    acc.iter().map(|a| activate(*a as f32, act)).collect()
}

pub fn fully_connected(input: &[f32], fc: &FullyConnected) -> Vec<f32> {
    linear(input, &fc.weight, &fc.bias, Activation::None)
}

/// The per-channel gate of a squeeze-excitation (h-sigmoid outputs in [0, 1]).
pub fn se_gate(input: &[f32], shape: Shape, se: &SqueezeExcite) -> Vec<f32> {
    let pooled = global_avg_pool(input, shape);
    let squeezed = linear(&pooled, &se.reduce_weight, &se.reduce_bias, se.act);
    linear(
        &squeezed,
        &se.expand_weight,
        &se.expand_bias,
        Activation::Hsigmoid,
    )
}

pub fn squeeze_excite(input: &[f32], shape: Shape, se: &SqueezeExcite) -> Vec<f32> {
    let gate = se_gate(input, shape, se);
    input
        .chunks_exact(shape.c as usize)
        .flat_map(|pixel| pixel.iter().zip(&gate).map(|(x, g)| x * g))
        .collect()
}

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Runs the whole network and returns every value (index 0 is the input), for tests that
/// want to see where two implementations part.
pub fn run_all(net: &Network, input: &[f32]) -> Result<Vec<Vec<f32>>, ReferenceError> {
    if input.len() as u64 != net.input.len() {
        return Err(ReferenceError::InputLength {
            expected: net.input.len(),
            got: input.len(),
        });
    }
    let mut values: Vec<Vec<f32>> = vec![input.to_vec()];
    for node in &net.nodes {
        let x = &values[node.input];
        let y = match &node.op {
            Op::Conv(c) => conv2d(x, node.in_shape, c),
            Op::Depthwise(d) => depthwise(x, node.in_shape, d),
            Op::SqueezeExcite(s) => squeeze_excite(x, node.in_shape, s),
            Op::GlobalAvgPool => global_avg_pool(x, node.in_shape),
            Op::FullyConnected(f) => fully_connected(x, f),
            Op::Add { other } => add(x, &values[*other]),
        };
        debug_assert_eq!(y.len() as u64, node.out_shape.len());
        values.push(y);
    }
    Ok(values)
}

/// The network's output for `input`.
pub fn run(net: &Network, input: &[f32]) -> Result<Vec<f32>, ReferenceError> {
    let mut values = run_all(net, input)?;
    Ok(values.pop().unwrap_or_default())
}

/// How far a kernel's output is from the reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    pub max_abs_error: f64,
    /// max |reference|, the scale errors are measured against (at least 1e-6, so an all-zero
    /// output cannot divide by zero).
    pub scale: f64,
    /// `max_abs_error / scale`; infinite when the lengths differ or the output has a NaN.
    pub relative_error: f64,
}

impl Comparison {
    pub fn of(output: &[f32], reference: &[f32]) -> Self {
        let scale = reference
            .iter()
            .fold(0f64, |m, r| m.max(f64::from(r.abs())))
            .max(1e-6);
        if output.len() != reference.len() {
            return Self {
                max_abs_error: f64::INFINITY,
                scale,
                relative_error: f64::INFINITY,
            };
        }
        let mut max_abs_error = 0f64;
        for (o, r) in output.iter().zip(reference) {
            let e = (f64::from(*o) - f64::from(*r)).abs();
            // NaN compares false: make it fail loudly instead of vanishing in `max`.
            max_abs_error = if e.is_nan() {
                f64::INFINITY
            } else {
                max_abs_error.max(e)
            };
        }
        Self {
            max_abs_error,
            scale,
            relative_error: max_abs_error / scale,
        }
    }

    pub fn passes(&self) -> bool {
        self.relative_error <= TOLERANCE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(kernel: u32, stride: u32, cin: u32, cout: u32, weight: Vec<f32>) -> Conv {
        Conv {
            kernel,
            stride,
            cin,
            cout,
            act: Activation::None,
            bias: vec![0.0; cout as usize],
            weight,
        }
    }

    #[test]
    fn activations() {
        assert_eq!(activate(-1.0, Activation::Relu), 0.0);
        assert_eq!(activate(-4.0, Activation::Hswish), 0.0);
        assert_eq!(activate(4.0, Activation::Hswish), 4.0);
        assert_eq!(activate(0.0, Activation::Hsigmoid), 0.5);
        assert_eq!(activate(3.0, Activation::Hsigmoid), 1.0);
        assert!((activate(1.0, Activation::Hswish) - 4.0 / 6.0).abs() < 1e-7);
    }

    #[test]
    fn conv_3x3_with_padding_sums_the_neighbourhood() {
        // 3x3 single channel of ones, all-ones kernel: corners see 4, edges 6, centre 9.
        let c = conv(3, 1, 1, 1, vec![1.0; 9]);
        let y = conv2d(&[1.0; 9], Shape::new(3, 3, 1), &c);
        assert_eq!(y, [4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
        // stride 2 on 3x3 gives 2x2: the taps centred on (0,0), (0,2), (2,0), (2,2).
        let c = conv(3, 2, 1, 1, vec![1.0; 9]);
        assert_eq!(conv2d(&[1.0; 9], Shape::new(3, 3, 1), &c), [4.0; 4]);
    }

    #[test]
    fn pointwise_is_a_matrix_product_per_pixel() {
        // 1 pixel, 2 channels in, 3 out; W = [[1, 2, 3], [4, 5, 6]]
        let mut c = conv(1, 1, 2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        c.bias = vec![0.5, 0.0, -1.0];
        assert_eq!(
            conv2d(&[1.0, 2.0], Shape::new(1, 1, 2), &c),
            [9.5, 12.0, 14.0]
        );
    }

    #[test]
    fn depthwise_keeps_channels_apart() {
        let dw = Depthwise {
            kernel: 1,
            stride: 1,
            channels: 2,
            act: Activation::Relu,
            weight: vec![2.0, -1.0],
            bias: vec![0.0, 0.0],
        };
        assert_eq!(
            depthwise(&[1.0, 1.0, 3.0, -2.0], Shape::new(1, 2, 2), &dw),
            [2.0, 0.0, 6.0, 2.0]
        );
    }

    #[test]
    fn squeeze_excite_scales_channels_by_the_gate() {
        // Zero weights: the gate is hsigmoid(bias).
        let se = SqueezeExcite {
            channels: 2,
            squeeze: 1,
            act: Activation::Relu,
            reduce_weight: vec![0.0, 0.0],
            reduce_bias: vec![0.0],
            expand_weight: vec![0.0, 0.0],
            expand_bias: vec![0.0, 3.0],
        };
        let y = squeeze_excite(&[2.0, 2.0, 4.0, 4.0], Shape::new(1, 2, 2), &se);
        assert_eq!(y, [1.0, 2.0, 2.0, 4.0]);
        assert_eq!(
            global_avg_pool(&[2.0, 1.0, 4.0, 3.0], Shape::new(2, 1, 2)),
            [3.0, 2.0]
        );
    }

    #[test]
    fn comparison_catches_nan_and_length() {
        assert!(Comparison::of(&[1.0, 2.0], &[1.0, 2.0]).passes());
        assert!(!Comparison::of(&[1.0, f32::NAN], &[1.0, 2.0]).passes());
        assert!(!Comparison::of(&[1.0], &[1.0, 2.0]).passes());
        let c = Comparison::of(&[1.0, 2.001], &[1.0, 2.0]);
        assert!((c.relative_error - 0.0005).abs() < 1e-6);
        assert!(!c.passes());
    }
}
