//! The simulated clients: when each request arrives and what it asks, all
//! drawn from the seed before the run starts.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::scenario::Traffic;

/// One client request of the run.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub id: u32,
    /// Arrival, from the start.
    pub at: Duration,
    pub stream: bool,
    /// Sent in Anthropic's Messages API (else OpenAI's chat completions).
    pub anthropic: bool,
    pub prompt: String,
}

/// Every request arriving within `duration`, in order.
pub(crate) fn plan(traffic: &Traffic, duration: Duration, seed: u64) -> Vec<Planned> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x0074_7261_6666_6963);
    let mut at = 0.0f64;
    let mut out = Vec::new();
    let end = duration.as_secs_f64();
    let uniform = traffic.arrivals == "uniform";
    loop {
        at = if uniform {
            (out.len() + 1) as f64 / traffic.rate
        } else {
            at - (1.0 - rng.random::<f64>()).ln() / traffic.rate
        };
        if at >= end {
            return out;
        }
        let id = out.len() as u32;
        let stream = rng.random::<f64>() < traffic.stream_share;
        let anthropic = rng.random::<f64>() < traffic.anthropic_share;
        let [low, high] = traffic.prompt_tokens;
        let prompt = if traffic.distinct_prompts > 0 {
            let k = rng.random_range(0..traffic.distinct_prompts);
            let tokens = low + (u64::from(k) * 7919 % u64::from(high - low + 1)) as u32;
            prompt_text(&format!("Simulated prompt {k}"), tokens)
        } else {
            prompt_text(&format!("Simulated request {id}"), rng.random_range(low..=high))
        };
        out.push(Planned { id, at: Duration::from_secs_f64(at), stream, anthropic, prompt });
    }
}

/// `head` padded to about `tokens` tokens (four bytes each).
fn prompt_text(head: &str, tokens: u32) -> String {
    let mut text = format!("{head}:");
    while text.len() < tokens as usize * 4 {
        text.push_str(" please summarise");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(arrivals: &str) -> Traffic {
        Traffic {
            rate: 10.0,
            arrivals: arrivals.into(),
            stream_share: 0.5,
            anthropic_share: 0.0,
            prompt_tokens: [10, 20],
            model: None,
            distinct_prompts: 0,
        }
    }

    #[test]
    fn uniform_arrivals_are_evenly_spaced_and_poisson_ones_average_the_rate() {
        let even = plan(&traffic("uniform"), Duration::from_secs(60), 1);
        assert_eq!(even.len(), 599, "10/s for 60 s, the first at 0.1 s, none at 60 s");
        assert_eq!(even[1].at - even[0].at, Duration::from_millis(100));
        let random = plan(&traffic("poisson"), Duration::from_secs(600), 1);
        assert!((5700..6300).contains(&random.len()), "{}", random.len());
        assert_eq!(
            plan(&traffic("poisson"), Duration::from_secs(60), 7).len(),
            plan(&traffic("poisson"), Duration::from_secs(60), 7).len()
        );
    }
}
