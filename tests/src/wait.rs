//! Polling with a deadline instead of sleeping: tests stay fast when things
//! are quick and still pass on a loaded machine.

use std::time::{Duration, Instant};

/// Polls `condition` until it returns true; panics after `timeout` saying
/// what was awaited.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for_value(what, timeout, || condition().then_some(()))
}

/// Polls `probe` until it returns `Some`, and returns that value; panics after
/// `timeout` saying what was awaited.
#[track_caller]
pub fn wait_for_value<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    // Start fast, back off so that slow waits do not hog the shared CPUs.
    let mut interval = Duration::from_millis(10);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(200));
    }
}
