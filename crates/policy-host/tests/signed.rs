//! Signed policies: with trusted keys, a policy file loads only with a valid
//! signature beside it; unsigned, wrongly signed or tampered files are
//! refused with the reason, and what served before serves on.

use std::sync::Arc;
use std::time::Duration;

use switchyard_policy_host::embedded::PLUGIN_ARTIFACTS;
use switchyard_policy_host::signature::{new_key, sign, signature_path};
use switchyard_policy_host::*;

fn host(trusted: Vec<signature::TrustedKey>) -> Arc<PolicyHost> {
    let t = |p: &str| Target { provider: p.into(), model: "m".into() };
    let options = HostOptions {
        trusted_keys: trusted,
        ..HostOptions::new(
            Topology {
                targets: vec![t("a"), t("b")],
                routes: vec![RouteInfo { model: "m".into(), targets: vec![0, 1] }],
            },
            Limits::new(Duration::from_millis(50), 32 << 20),
        )
    };
    PolicyHost::new(options, Arc::new(HealthBook::new(2))).unwrap()
}

#[tokio::test]
async fn with_trusted_keys_only_a_file_signed_by_one_of_them_loads() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("signed-policy.wasm");
    let bytes = std::fs::read(format!("{PLUGIN_ARTIFACTS}/failover.wasm")).unwrap();
    std::fs::write(&policy, &bytes).unwrap();
    let (secret, public) = new_key().unwrap();
    let (stranger, _) = new_key().unwrap();
    let host = host(vec![public]);

    let unsigned = host.load_file(&policy).await.unwrap_err();
    assert_eq!(unsigned.reason(), "signature");
    assert!(unsigned.to_string().contains("not signed") && unsigned.to_string().contains("signed-policy.wasm.sig"));
    assert!(host.slots().iter().all(|s| s.name != "signed-policy" || s.current.is_none()), "nothing loaded");

    std::fs::write(signature_path(&policy), sign(&stranger, &bytes).unwrap()).unwrap();
    let wrong = host.load_file(&policy).await.unwrap_err();
    assert!(wrong.to_string().contains("does not verify with any of the 1 trusted key(s)"), "{wrong}");

    std::fs::write(signature_path(&policy), sign(&secret, &bytes).unwrap()).unwrap();
    let loaded = host.load_file(&policy).await.unwrap().expect("a new version");
    assert!(loaded.label().starts_with("signed-policy@"));

    // The file changes after signing (one byte appended): refused, and the
    // signed version serves on.
    let mut tampered = bytes.clone();
    tampered.push(0);
    std::fs::write(&policy, &tampered).unwrap();
    let err = host.load_file(&policy).await.unwrap_err();
    assert!(err.to_string().contains("changed after signing"), "{err}");
    let serving = host.slots().into_iter().find(|s| s.name == "signed-policy").unwrap();
    assert_eq!(serving.current.map(|v| v.label().clone()), Some(loaded.label().clone()));
}

#[tokio::test]
async fn without_trusted_keys_no_signature_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("plain.wasm");
    std::fs::copy(format!("{PLUGIN_ARTIFACTS}/failover.wasm"), &policy).unwrap();
    assert!(host(Vec::new()).load_file(&policy).await.unwrap().is_some());
}
