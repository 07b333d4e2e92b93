// wgpu-direct: 1x1 conv plus bias, HWC, one invocation per output value: y[p][co] =
// bias[co] + sum over ci of x[p][ci] * w[ci][co]. The activation is a dispatch of its own.

struct Params {
    pixels: u32, cin: u32, cout: u32, total: u32,
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
    let xb = (i / p.cout) * p.cin;
    var acc = bias[co];
    for (var ci = 0u; ci < p.cin; ci++) {
        acc += x[xb + ci] * wt[ci * p.cout + co];
    }
    y[i] = acc;
}
