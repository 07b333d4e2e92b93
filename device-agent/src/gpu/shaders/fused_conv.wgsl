// wgpu-fused: dense kxk conv (stride s, padding k/2) with bias and activation fused in, for
// any channel counts: the stem (3 input channels), and 1x1 convs whose channels are not
// multiples of 4. Input and output are plain HWC f32; weights are [ky][kx][cin][COUT4] vec4s
// with the output channels zero-padded to a multiple of 4.
//
// One invocation computes CPT4 vec4s of output channels of one pixel; workgroup row `wid.y`
// picks the block, so the weights read at a tap are uniform across the workgroup.

override H: u32;
override W: u32;
override CIN: u32;
override HO: u32;
override WO: u32;
override COUT: u32;
override COUT4: u32;
override K: u32;
override STRIDE: u32;
override CPT4: u32;
override ACT: u32;
override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn act(v: vec4<f32>) -> vec4<f32> {
    switch ACT {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return v * clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) * (1.0 / 6.0); }
        case 3u: { return clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) * (1.0 / 6.0); }
        default: { return v; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let p = gid.x;
    if (p >= HO * WO) {
        return;
    }
    let oy = p / WO;
    let ox = p % WO;
    let co = wid.y * CPT4;
    var acc: array<vec4<f32>, 4>;
    for (var b = 0u; b < CPT4; b++) {
        acc[b] = bias[co + b];
    }
    let pad = i32(K / 2u);
    for (var ky = 0u; ky < K; ky++) {
        let iy = i32(oy * STRIDE + ky) - pad;
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        for (var kx = 0u; kx < K; kx++) {
            let ix = i32(ox * STRIDE + kx) - pad;
            if (ix < 0 || ix >= i32(W)) {
                continue;
            }
            let xb = (u32(iy) * W + u32(ix)) * CIN;
            let wb = (ky * K + kx) * CIN * COUT4 + co;
            for (var ci = 0u; ci < CIN; ci++) {
                let xs = x[xb + ci];
                for (var b = 0u; b < CPT4; b++) {
                    acc[b] = acc[b] + xs * wt[wb + ci * COUT4 + b];
                }
            }
        }
    }
    for (var b = 0u; b < CPT4; b++) {
        let v = act(acc[b]);
        for (var j = 0u; j < 4u; j++) {
            let c = (co + b) * 4u + j;
            if (c < COUT) {
                y[p * COUT + c] = v[j];
            }
        }
    }
}
