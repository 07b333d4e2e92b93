//! The agent's own kernel sets, each a "framework" with a version in the latency tables'
//! sense: a table is per (device, framework), and a kernel change that can move timings
//! bumps the version so old entries are marked stale instead of silently mixed in.

use std::fmt;

/// One of this agent's kernel sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Framework {
    /// One dispatch per op, one invocation per output value, sizes read from a uniform: the
    /// plain baseline every optimisation is measured against.
    WgpuDirect,
    /// Activations, biases, SE scaling and residual adds fused into the convs, SE pooling
    /// fused into the depthwise conv, register-blocked vec4 kernels with workgroup-memory
    /// tiling for pointwise convs, and shapes and workgroup sizes specialised per layer.
    WgpuFused,
}

impl Framework {
    pub const ALL: [Framework; 2] = [Self::WgpuDirect, Self::WgpuFused];

    pub fn name(self) -> &'static str {
        match self {
            Self::WgpuDirect => "wgpu-direct",
            Self::WgpuFused => "wgpu-fused",
        }
    }

    /// Bumped whenever a kernel of the set changes in a way that can change its timings.
    pub fn version(self) -> &'static str {
        match self {
            Self::WgpuDirect | Self::WgpuFused => "1",
        }
    }
}

/// What this agent can measure with, as sent at enrollment and in heartbeats: our kernel sets
/// and every external adapter found, probed once per process (see [`crate::adapter`]).
pub fn supported() -> Vec<gpulut_tables::protocol::FrameworkSupport> {
    crate::adapter::Registry::global().supported()
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
