//! Fuel against time: how long a looping policy runs before its fuel budget
//! stops it, on this machine, idle and with every core kept busy. Fuel is a
//! count of the guest's own wasm instructions, so the work done before the
//! stop is the same in both; only the time it takes moves with the machine.
//! The gateway's `FUEL_PER_MS` (a decision's default budget per millisecond
//! of `decision_timeout_ms`) is calibrated from the idle figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_policy_host::*;

pub struct FuelFigures {
    /// The budget each looping decision had.
    pub budget: u64,
    /// p50 / max time to the stop, idle.
    pub idle: (Duration, Duration),
    /// p50 / max time to the stop with every core busy.
    pub busy: (Duration, Duration),
    /// Stops that were the budget (not the wall-clock backstop), of all.
    pub by_budget: (usize, usize),
}

async fn loops(version: &PolicyVersion, n: usize, by_budget: &mut usize) -> Vec<Duration> {
    let call = Arc::new(CallContext::from_headers([("x-chaos", &b"loop"[..])]));
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let answer = version.route(&crate::decision::sample_request(), call.clone()).await;
        times.push(started.elapsed());
        *by_budget += usize::from(matches!(answer, Err(PolicyError::BudgetExceeded(_))));
    }
    times.sort();
    times
}

pub fn measure(n: usize) -> FuelFigures {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let host = crate::decision::host(None);
        let file = std::path::Path::new(embedded::PLUGIN_ARTIFACTS).join("chaos.wasm");
        let bytes = std::fs::read(&file).expect("the chaos fixture (built with the workspace)");
        let (version, _) = host.prepare("chaos", bytes, PolicyOrigin::File(file)).await.expect("chaos loads");
        let mut by_budget = 0;
        let idle = loops(&version, n, &mut by_budget).await;
        // Every core kept busy by spinning threads while the loops run again.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |c| c.get());
        let spinners: Vec<_> = (0..cores * 2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                })
            })
            .collect();
        let busy = loops(&version, n, &mut by_budget).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spinners {
            let _ = s.join();
        }
        let p = |v: &[Duration]| (crate::pct(v, 0.5), *v.last().unwrap_or(&Duration::ZERO));
        FuelFigures {
            budget: Limits::new(Duration::from_millis(5), 0).decision_fuel,
            idle: p(&idle),
            busy: p(&busy),
            by_budget: (by_budget, 2 * n),
        }
    })
}
