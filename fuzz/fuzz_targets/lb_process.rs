//! libFuzzer target: arbitrary frame sequences through `Lb::process` on the
//! harness snapshot (see `src/lib.rs` for the input format and invariants).
#![no_main]

use std::sync::{Arc, OnceLock};

use dataplane::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

/// Built once: the harness checks after every input that the real servers'
/// counts are back to 0, and restarts the schedulers, so runs stay independent.
static SNAP: OnceLock<Arc<Snapshot>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let snap = SNAP.get_or_init(|| Arc::new(rvs_fuzz::snapshot())).clone();
    rvs_fuzz::run_on(rvs_fuzz::Harness::with(snap), data);
});
