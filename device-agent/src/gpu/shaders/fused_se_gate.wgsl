// wgpu-fused: the whole squeeze-excitation gate in one dispatch of one workgroup: global
// average pool, the squeezing 1x1 conv with bias and activation, the expanding 1x1 conv with
// bias and h-sigmoid. The gate then scales the project conv's input inside that conv, so the
// scaled map is never written.
//
// `x` is either the feature map itself (ROWS = its pixels) or, when the depthwise conv before
// it already summed its outputs per invocation, those partial sums (ROWS = invocations): the
// pooling then reads a few rows instead of the whole map. Either way the mean divides by
// COUNT, the map's pixels. Channels are vec4s (C a multiple of 4); the squeeze is padded to
// S4 vec4s with zero weights and biases.

override ROWS: u32;
override COUNT: f32;
override C4: u32;
override S4: u32;
override ACT: u32;

const WG: u32 = 256u;
const MAX4: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
// [C][S4] vec4s
@group(0) @binding(1) var<storage, read> w1: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b1: array<vec4<f32>>;
// [S4 * 4][C4] vec4s, padded rows zero
@group(0) @binding(3) var<storage, read> w2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> b2: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> gate: array<vec4<f32>>;

var<workgroup> pooled: array<vec4<f32>, MAX4>;
var<workgroup> squeezed: array<vec4<f32>, MAX4>;

fn act(v: vec4<f32>) -> vec4<f32> {
    switch ACT {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return v * clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) * (1.0 / 6.0); }
        case 3u: { return clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) * (1.0 / 6.0); }
        default: { return v; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    for (var c = lid; c < C4; c += WG) {
        var acc = vec4<f32>(0.0);
        for (var r = 0u; r < ROWS; r++) {
            acc = acc + x[r * C4 + c];
        }
        pooled[c] = acc * (1.0 / COUNT);
    }
    workgroupBarrier();
    for (var j = lid; j < S4; j += WG) {
        var acc = b1[j];
        for (var c = 0u; c < C4; c++) {
            let v = pooled[c];
            let r = 4u * c * S4 + j;
            acc = acc + v.x * w1[r] + v.y * w1[r + S4] + v.z * w1[r + 2u * S4]
                + v.w * w1[r + 3u * S4];
        }
        squeezed[j] = act(acc);
    }
    workgroupBarrier();
    for (var c = lid; c < C4; c += WG) {
        var acc = b2[c];
        for (var j = 0u; j < S4; j++) {
            let v = squeezed[j];
            let r = 4u * j * C4 + c;
            acc = acc + v.x * w2[r] + v.y * w2[r + C4] + v.z * w2[r + 2u * C4]
                + v.w * w2[r + 3u * C4];
        }
        gate[c] = clamp(acc + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) * (1.0 / 6.0);
    }
}
