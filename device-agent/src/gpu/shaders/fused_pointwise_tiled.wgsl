// wgpu-fused: 1x1 conv tiled through workgroup memory, for GPUs with fast shared memory.
// Bias, activation, an SE gate on the input channels (HAS_GATE) and a residual add
// (HAS_RESIDUAL) are fused in; HWC with channels in vec4s (CIN and COUT multiples of 4).
//
// A workgroup computes 64 pixels x 32 output channels. For each chunk of 16 input channels
// its 64 invocations stage the 64x16 input tile and the 16x32 weight tile in workgroup
// memory (each global value loaded once per workgroup instead of once per invocation), then
// each invocation accumulates 4 pixels x 8 channels from there in registers.
//
// CPU drivers (lavapipe) read workgroup memory lane by lane like storage buffers, so there
// the register-blocked kernel with uniform weights (gpu/codegen.rs) is used instead.

const TP: u32 = 64u;
const TC4: u32 = 8u;
const TK4: u32 = 4u;

override PIXELS: u32;
override CIN4: u32;
override COUT4: u32;
override ACT: u32;
override HAS_GATE: bool;
override HAS_RESIDUAL: bool;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
// [cin][COUT4]
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gate: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;

// [pixel][k4] and [k][c4]
var<workgroup> xs: array<vec4<f32>, 256>;
var<workgroup> ws: array<vec4<f32>, 128>;

fn act(v: vec4<f32>) -> vec4<f32> {
    switch ACT {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return v * clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) * (1.0 / 6.0); }
        case 3u: { return clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) * (1.0 / 6.0); }
        default: { return v; }
    }
}

fn bias_at(c4: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), bias[min(c4, COUT4 - 1u)], c4 < COUT4);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let p_base = wid.x * TP;
    let c_base = wid.y * TC4;
    // Invocation (tx, ty) owns pixels 4tx..4tx+3 and channel vec4s 2ty, 2ty+1 of the tile.
    let tx = lid % 16u;
    let ty = lid / 16u;
    let c0 = c_base + 2u * ty;
    var a00 = bias_at(c0);
    var a01 = bias_at(c0 + 1u);
    var a10 = a00;
    var a11 = a01;
    var a20 = a00;
    var a21 = a01;
    var a30 = a00;
    var a31 = a01;
    for (var k0 = 0u; k0 < CIN4; k0 += TK4) {
        for (var i = 0u; i < 4u; i++) {
            let idx = lid + 64u * i;
            let p = p_base + idx / TK4;
            let k = k0 + idx % TK4;
            var v = vec4<f32>(0.0);
            if (p < PIXELS && k < CIN4) {
                v = x[p * CIN4 + k];
                if (HAS_GATE) {
                    v = v * gate[k];
                }
            }
            xs[idx] = v;
        }
        for (var i = 0u; i < 2u; i++) {
            let idx = lid + 64u * i;
            let k = k0 * 4u + idx / TC4;
            let c = c_base + idx % TC4;
            var w = vec4<f32>(0.0);
            if (k < CIN4 * 4u && c < COUT4) {
                w = wt[k * COUT4 + c];
            }
            ws[idx] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK4; kk++) {
            let wr = kk * 4u * TC4 + 2u * ty;
            let w00 = ws[wr];
            let w01 = ws[wr + 1u];
            let w10 = ws[wr + TC4];
            let w11 = ws[wr + TC4 + 1u];
            let w20 = ws[wr + 2u * TC4];
            let w21 = ws[wr + 2u * TC4 + 1u];
            let w30 = ws[wr + 3u * TC4];
            let w31 = ws[wr + 3u * TC4 + 1u];
            let x0 = xs[(4u * tx) * TK4 + kk];
            let x1 = xs[(4u * tx + 1u) * TK4 + kk];
            let x2 = xs[(4u * tx + 2u) * TK4 + kk];
            let x3 = xs[(4u * tx + 3u) * TK4 + kk];
            a00 = a00 + x0.x * w00 + x0.y * w10 + x0.z * w20 + x0.w * w30;
            a01 = a01 + x0.x * w01 + x0.y * w11 + x0.z * w21 + x0.w * w31;
            a10 = a10 + x1.x * w00 + x1.y * w10 + x1.z * w20 + x1.w * w30;
            a11 = a11 + x1.x * w01 + x1.y * w11 + x1.z * w21 + x1.w * w31;
            a20 = a20 + x2.x * w00 + x2.y * w10 + x2.z * w20 + x2.w * w30;
            a21 = a21 + x2.x * w01 + x2.y * w11 + x2.z * w21 + x2.w * w31;
            a30 = a30 + x3.x * w00 + x3.y * w10 + x3.z * w20 + x3.w * w30;
            a31 = a31 + x3.x * w01 + x3.y * w11 + x3.z * w21 + x3.w * w31;
        }
        workgroupBarrier();
    }
    let p0 = p_base + 4u * tx;
    store(p0, c0, a00);
    store(p0, c0 + 1u, a01);
    store(p0 + 1u, c0, a10);
    store(p0 + 1u, c0 + 1u, a11);
    store(p0 + 2u, c0, a20);
    store(p0 + 2u, c0 + 1u, a21);
    store(p0 + 3u, c0, a30);
    store(p0 + 3u, c0 + 1u, a31);
}

fn store(p: u32, c: u32, acc: vec4<f32>) {
    if (p < PIXELS && c < COUT4) {
        let o = p * COUT4 + c;
        var v = act(acc);
        if (HAS_RESIDUAL) {
            v = v + residual[o];
        }
        y[o] = v;
    }
}
