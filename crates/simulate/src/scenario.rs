//! A scenario file: how long, what traffic, which providers fail how and
//! when, and the gateway config under test (inline as `[gateway]`, or a
//! file named by `gateway = "PATH"`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use switchyard_mock::ProviderPlan;

use crate::SimulateError;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name for the report.
    #[serde(default)]
    pub name: Option<String>,
    /// What it rehearses.
    #[serde(default)]
    pub description: Option<String>,
    /// Simulated time (`"1h"`, `"90m"`).
    #[serde(deserialize_with = "span")]
    pub duration: Duration,
    /// The seed when `--seed` is not given. Default 1.
    #[serde(default = "one")]
    pub seed: u64,
    /// Width of one step of the report's timeline. Default: the duration / 60.
    #[serde(default, deserialize_with = "maybe_span")]
    pub step: Option<Duration>,
    /// The clients.
    pub traffic: Traffic,
    /// Every provider the gateway config names, and how it behaves.
    pub providers: Vec<ProviderPlan>,
    /// The gateway config: a table (the same keys as `switchyard.toml`;
    /// providers need no `base_url`) or the path of a config file.
    #[serde(default)]
    pub gateway: Option<GatewaySource>,
    /// Directory of the scenario file (relative paths resolve against it).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Where the gateway config comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum GatewaySource {
    /// A config file, relative to the scenario file.
    File(PathBuf),
    /// The config, inline.
    Inline(toml::Table),
}

/// `[traffic]`: what the clients send.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Requests per second, on average.
    pub rate: f64,
    /// `"poisson"` (default: independent arrivals) or `"uniform"` (evenly spaced).
    #[serde(default = "poisson")]
    pub arrivals: String,
    /// The share of requests that ask for a stream. Default 0.5.
    #[serde(default = "half")]
    pub stream_share: f64,
    /// The share of requests from Anthropic-API clients (`/v1/messages`); the rest use OpenAI's. Default 0.
    #[serde(default)]
    pub anthropic_share: f64,
    /// Prompt size in tokens, drawn evenly from `[low, high]`. Default `[100, 1000]`.
    #[serde(default = "default_prompt_tokens")]
    pub prompt_tokens: [u32; 2],
    /// The client-facing model asked for. Default: the first route's.
    #[serde(default)]
    pub model: Option<String>,
    /// Prompts are drawn from this many distinct ones (repeats can be
    /// answered from the cache); 0, the default: every prompt is new.
    #[serde(default)]
    pub distinct_prompts: u32,
}

fn one() -> u64 {
    1
}
fn half() -> f64 {
    0.5
}
fn poisson() -> String {
    "poisson".into()
}
fn default_prompt_tokens() -> [u32; 2] {
    [100, 1000]
}

fn span<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    switchyard_mock::parse_span(&text).map_err(serde::de::Error::custom)
}

fn maybe_span<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    span(d).map(Some)
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, SimulateError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| SimulateError::Scenario(format!("{}: {e}", path.display())))?;
        let mut scenario = Self::parse(&text, &path.display().to_string())?;
        scenario.base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(scenario)
    }

    /// Parses and checks a scenario (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, SimulateError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| SimulateError::Scenario(format!("{origin}: {}", e.to_string().trim())))?;
        scenario.check().map_err(|why| SimulateError::Scenario(format!("{origin}: {why}")))?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), String> {
        let t = &self.traffic;
        if self.duration.is_zero() {
            return Err("duration must be above 0".into());
        }
        if !(t.rate > 0.0 && t.rate <= 10_000.0) {
            return Err(format!("traffic.rate must be above 0 and at most 10000 requests/s, not {}", t.rate));
        }
        if !matches!(t.arrivals.as_str(), "poisson" | "uniform") {
            return Err(format!("traffic.arrivals must be \"poisson\" or \"uniform\", not {:?}", t.arrivals));
        }
        for (name, share) in [("stream_share", t.stream_share), ("anthropic_share", t.anthropic_share)] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("traffic.{name} must be within 0..=1, not {share}"));
            }
        }
        if t.prompt_tokens[0] > t.prompt_tokens[1] || t.prompt_tokens[1] > 200_000 {
            return Err("traffic.prompt_tokens must be [low, high] with low <= high <= 200000".into());
        }
        if self.providers.is_empty() {
            return Err("a scenario needs at least one [[providers]]".into());
        }
        for (i, p) in self.providers.iter().enumerate() {
            p.check()?;
            if self.providers[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("provider {:?} is described twice", p.name));
            }
        }
        Ok(())
    }

    /// The timeline's step.
    pub fn step(&self) -> Duration {
        self.step.unwrap_or(self.duration / 60).max(Duration::from_secs(1))
    }
}
