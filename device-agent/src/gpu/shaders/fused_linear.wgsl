// wgpu-fused: y = act(x W + b) on a vector (the classifier and 1x1 convs on a 1x1 map), W as
// [cin][COUT4] vec4s with the outputs zero-padded to a multiple of 4. One invocation per
// vec4 of outputs: with a single pixel, output channels are the only parallelism.

override CIN: u32;
override COUT: u32;
override COUT4: u32;
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
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    if (o >= COUT4) {
        return;
    }
    var acc = bias[o];
    for (var ci = 0u; ci < CIN; ci++) {
        acc = acc + x[ci] * wt[ci * COUT4 + o];
    }
    let v = act(acc);
    for (var j = 0u; j < 4u; j++) {
        if (o * 4u + j < COUT) {
            y[o * 4u + j] = v[j];
        }
    }
}
