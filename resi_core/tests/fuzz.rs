//! Time-budgeted fuzzing of the properties in props/ (issue 6: key parsing, row normalisation,
//! the canonical form, the aggregates' state readers and round trips), one property at a time:
//! fresh random inputs until the budget is spent, then the number of executions. A failure is
//! shrunk to a minimal input, printed, and fails the run (exit status 1).
//!
//! `RESI_FUZZ_SECONDS` per property (default 2, what `make test` spends); `make fuzz` runs 600
//! in release mode; `RESI_FUZZ_ONLY=name` runs one property.

mod props;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestError, TestRunner};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Cases per round: between rounds the clock is read; each round starts from fresh entropy.
const ROUND: u32 = 256;

/// Runs `check` on inputs of `strategy` for `budget`; the executions, or the minimal failing input.
fn fuzz<S>(strategy: S, check: fn(S::Value) -> props::Outcome, budget: Duration) -> Result<u64, String>
where
    S: Strategy,
    S::Value: Debug,
{
    let started = Instant::now();
    let mut executions = 0u64;
    while executions == 0 || started.elapsed() < budget {
        let config = Config { cases: ROUND, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        match runner.run(&strategy, check) {
            Ok(()) => executions += u64::from(ROUND),
            Err(TestError::Fail(reason, input)) => return Err(format!("{reason}\nminimal input: {input:#?}")),
            Err(TestError::Abort(reason)) => return Err(format!("aborted: {reason}")),
        }
    }
    Ok(executions)
}

fn main() {
    let seconds: u64 = std::env::var("RESI_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let only = std::env::var("RESI_FUZZ_ONLY").ok();
    let budget = Duration::from_secs(seconds);
    type Run = Box<dyn Fn(Duration) -> Result<u64, String>>;
    let properties: Vec<(&str, Run)> = vec![
        ("key_parsing", Box::new(|b| fuzz(props::key_input(), props::key_parsing, b))),
        ("normalisation", Box::new(|b| fuzz(props::raw_listing(), props::normalisation, b))),
        ("canonical_form", Box::new(|b| fuzz(props::json_value(), props::canonical_form, b))),
        ("state_readers", Box::new(|b| fuzz(props::state_bytes(), props::state_readers, b))),
        ("state_round_trips", Box::new(|b| fuzz(props::votes(), props::state_round_trips, b))),
    ];
    let mut failed = false;
    for (name, run) in &properties {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let started = Instant::now();
        match run(budget) {
            Ok(executions) => {
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "fuzz {name}: {executions} executions in {secs:.0} s ({:.0}/s), no findings",
                    executions as f64 / secs
                );
            }
            Err(finding) => {
                println!("fuzz {name}: FINDING\n{finding}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
