// wgpu-direct: an activation applied in place. mode: 0 none, 1 ReLU, 2 h-swish, 3 h-sigmoid.

struct Params {
    total: u32, mode: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.total) {
        return;
    }
    let v = y[i];
    switch p.mode {
        case 1u: { y[i] = max(v, 0.0); }
        case 2u: { y[i] = v * clamp(v + 3.0, 0.0, 6.0) / 6.0; }
        case 3u: { y[i] = clamp(v + 3.0, 0.0, 6.0) / 6.0; }
        default: {}
    }
}
