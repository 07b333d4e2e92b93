// wgpu-direct: depthwise kxk conv (stride s, padding k/2) plus bias, HWC, one invocation per
// output value. Weights are [ky][kx][c]. The activation is a dispatch of its own.

struct Params {
    h: u32, w: u32, c: u32,
    ho: u32, wo: u32,
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
    let c = i % p.c;
    let px = i / p.c;
    let ox = px % p.wo;
    let oy = px / p.wo;
    var acc = bias[c];
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
            acc += x[(u32(iy) * p.w + u32(ix)) * p.c + c] * wt[(ky * p.k + kx) * p.c + c];
        }
    }
    y[i] = acc;
}
