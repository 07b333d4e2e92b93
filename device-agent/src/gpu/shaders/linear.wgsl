// wgpu-direct: y = x W + b on a vector (fully connected layers and the SE convs on the pooled
// 1x1 map), W as [cin][cout], one invocation per output.

struct Params {
    cin: u32, cout: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let co = gid.x + gid.y * nwg.x * 64u;
    if (co >= p.cout) {
        return;
    }
    var acc = bias[co];
    for (var ci = 0u; ci < p.cin; ci++) {
        acc += x[ci] * wt[ci * p.cout + co];
    }
    y[co] = acc;
}
