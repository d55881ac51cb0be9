//! Builds the policy components in `plugins/` (and the example policies) for
//! `wasm32-wasip2`, so the shipped policies can be embedded in the binary and
//! tests can find the fixtures. A nested cargo with its own target dir, so it
//! never contends with the outer build's lock.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().expect("workspace root");
    let plugins = root.join("plugins");
    for watched in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/sdk-rust",
        "plugins/failover",
        "plugins/resilient",
        "plugins/least-latency",
        "plugins/p2c",
        "plugins/fixtures",
        "wit",
        "examples/weighted-split/policy",
        "examples/tenant-tiers/policy",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SWITCHYARD_PLUGIN_TARGET_DIR");

    let target_dir = std::env::var_os("SWITCHYARD_PLUGIN_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("wasm-plugins")
    });
    check_wasm_target();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--workspace", "--target-dir"])
        .arg(&target_dir);
    // The outer build's settings are for the host, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo to build plugins/");
    if !status.success() {
        panic!("building the policy components in {} failed (see the output above)", plugins.display());
    }
    let out = target_dir.join("wasm32-wasip2/release");
    for name in [
        "failover",
        "resilient",
        "least_latency",
        "p2c",
        "weighted_split",
        "tenant_tiers",
        "chaos",
        "forbidden_import",
        "round_robin",
        "previous_world",
    ] {
        let file = out.join(format!("{name}.wasm"));
        assert!(file.exists(), "{} was not built", file.display());
    }
    println!("cargo:rustc-env=SWITCHYARD_PLUGIN_ARTIFACTS={}", out.display());
}

fn check_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().expect("rustc --print sysroot");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if !Path::new(&sysroot).join("lib/rustlib/wasm32-wasip2").exists() {
        panic!(
            "the wasm32-wasip2 target is not installed, and Switchyard's policies are built for it.\n\
             Run: rustup target add wasm32-wasip2"
        );
    }
}
