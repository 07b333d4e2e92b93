// wgpu-direct: dense kxk conv (stride s, padding k/2) plus bias, HWC, one invocation per
// output value. Weights are [ky][kx][cin][cout]. The activation is a dispatch of its own.

struct Params {
    h: u32, w: u32, cin: u32,
    ho: u32, wo: u32, cout: u32,
    k: u32, stride: u32, pad: u32,
    total: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.total) {
        return;
    }
    let co = i % p.cout;
    let px = i / p.cout;
    let ox = px % p.wo;
    let oy = px / p.wo;
    var acc = bias[co];
    for (var ky = 0u; ky < p.k; ky++) {
        let iy = i32(oy * p.stride + ky) - i32(p.pad);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.k; kx++) {
            let ix = i32(ox * p.stride + kx) - i32(p.pad);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let xb = (u32(iy) * p.w + u32(ix)) * p.cin;
            let wb = (ky * p.k + kx) * p.cin * p.cout + co;
            for (var ci = 0u; ci < p.cin; ci++) {
                acc += x[xb + ci] * wt[wb + ci * p.cout];
            }
        }
    }
    y[i] = acc;
}
