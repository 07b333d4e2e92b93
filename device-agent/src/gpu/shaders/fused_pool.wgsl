// wgpu-fused: global average pool over HWC with channels in vec4s, one invocation per vec4.

override PIXELS: u32;
override C4: u32;
override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= C4) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var p = 0u; p < PIXELS; p++) {
        acc = acc + x[p * C4 + c];
    }
    y[c] = acc * (1.0 / f32(PIXELS));
}
