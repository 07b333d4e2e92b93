//! Integration tests on a real Vulkan driver: the kernels against the CPU reference
//! (`kernels`, `blocks`), and the real `gpulut-agent` binary the way a person or script runs
//! it (`info`, `bench`). On machines without a GPU, Mesa's lavapipe
//! (`mesa-vulkan-drivers libvulkan1`) provides the driver. Run counts stay tiny: lavapipe is
//! slow, and these tests check correctness and plumbing, never speed.

mod adapters;
mod bench;
mod blocks;
mod info;
mod kernels;

use std::process::{Command, Output};

/// Runs the built agent with `args`, with a clean backend choice so a developer's
/// `GPULUT_BACKEND` cannot change what is tested.
pub fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpulut-agent"))
        .args(args)
        .env_remove("GPULUT_BACKEND")
        .output()
        .expect("the agent binary starts")
}

/// Stdout as text, failing the test with stderr shown when the command did not succeed.
pub fn stdout_of_success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "agent failed with {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}
