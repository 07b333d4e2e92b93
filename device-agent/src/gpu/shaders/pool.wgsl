// wgpu-direct: global average pool, HWC, one invocation per channel.

struct Params {
    pixels: u32, c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * 64u;
    if (c >= p.c) {
        return;
    }
    var acc = 0.0;
    for (var i = 0u; i < p.pixels; i++) {
        acc += x[i * p.c + c];
    }
    y[c] = acc / f32(p.pixels);
}
