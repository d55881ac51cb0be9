//! `--simulate`: how fast `switchyard simulate` runs the yardstick,
//! an hour of traffic at 50 requests a second (half of them streamed) with
//! a 503 outage, in the release build. Wall time is the figure; the
//! simulated time it stands for is fixed, so the ratio is the speed-up.

use std::time::{Duration, Instant};

use switchyard_simulate::{Options, Scenario, simulate};

/// One hour at 50 requests/s of the shipped multi-hour-5xx scenario.
pub struct Speed {
    pub requests: u64,
    pub simulated: Duration,
    pub wall: Duration,
}

pub fn measure() -> Speed {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios/multi-hour-5xx.toml");
    let mut scenario = Scenario::load(&file).expect("the shipped scenario");
    scenario.duration = Duration::from_secs(3600);
    scenario.traffic.rate = 50.0;
    let started = Instant::now();
    let report = simulate(&scenario, &Options::default()).expect("the scenario runs");
    Speed { requests: report.requests, simulated: scenario.duration, wall: started.elapsed() }
}
