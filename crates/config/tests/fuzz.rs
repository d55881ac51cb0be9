//! Hostile config files: the loader fed arbitrary text and mutations of the
//! shipped example configs never panics; it loads them or says why, with a
//! line number when the text has one.
//!
//! Cases: 256 by default; `FUZZ_CASES=N` for a longer run.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const EXAMPLES: [&str; 4] = ["failover", "resilient", "claude-to-local", "weighted-split"];

fn example(name: &str) -> String {
    let path = format!("{}/../../examples/{name}/switchyard.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn runner() -> TestRunner {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// A line of an example replaced, removed or duplicated, or characters spliced in.
fn mutated() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("=".to_owned()),
        Just("[".to_owned()),
        Just("\"".to_owned()),
        Just("[[routes]]\n".to_owned()),
        Just("timeout_ms = -1\n".to_owned()),
        Just("max_body_bytes = 99999999999999999999\n".to_owned()),
        Just("targets = []\n".to_owned()),
        Just("\u{0}".to_owned()),
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ];
    (0..EXAMPLES.len(), prop::collection::vec((any::<usize>(), 0u8..3, piece), 1..6)).prop_map(|(i, edits)| {
        let mut lines: Vec<String> = example(EXAMPLES[i]).lines().map(str::to_owned).collect();
        for (at, how, piece) in edits {
            let at = at % lines.len().max(1);
            match how {
                0 if !lines.is_empty() => lines[at] = piece,
                1 if !lines.is_empty() => {
                    lines.remove(at);
                }
                _ => lines.insert(at, piece),
            }
        }
        lines.join("\n")
    })
}

#[test]
fn the_loader_never_panics_on_any_text() {
    let text =
        prop_oneof![1 => prop::collection::vec(any::<char>(), 0..400).prop_map(String::from_iter), 4 => mutated()];
    runner()
        .run(&text, |text| {
            if let Err(e) = switchyard_config::from_str(&text, "fuzz.toml") {
                prop_assert!(!e.to_string().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_shipped_example_loads() {
    for name in EXAMPLES {
        switchyard_config::from_str(&example(name), "example.toml").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
