//! EAL initialisation, lcore launch and the TSC clock.
use std::ffi::{c_int, c_void, CString};

/// EAL could not be initialised or an lcore could not be launched.
#[derive(Debug)]
pub struct EalError(pub String);

impl std::fmt::Display for EalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for EalError {}

/// Initialises EAL with `args` (args[0] is the program name). Once per process.
pub fn init(args: &[String]) -> Result<(), EalError> {
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| EalError(format!("EAL argument {a:?} contains NUL"))))
        .collect::<Result<_, _>>()?;
    // EAL may permute argv; give it its own array of pointers to our strings.
    let mut argv: Vec<*mut std::ffi::c_char> = cargs.iter().map(|c| c.as_ptr() as *mut _).collect();
    // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call
    // (cargs is alive until the end of this function; EAL copies what it keeps).
    let rc = unsafe { dpdk_sys::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
    if rc < 0 {
        // SAFETY: rte_errno is a per-thread variable; reading it has no precondition.
        let errno = unsafe { dpdk_sys::rvs_rte_errno() };
        let why = if errno == 0 { "see the EAL messages above".to_owned() } else { super::strerror(errno) };
        return Err(EalError(format!("EAL initialisation failed: {why} (EAL arguments: {})", args[1..].join(" "))));
    }
    Ok(())
}

/// Releases EAL resources; call after every port is closed and every lcore joined.
pub fn cleanup() {
    // SAFETY: called once, from the main lcore, after all workers returned.
    unsafe {
        dpdk_sys::rte_eal_cleanup();
    }
}

/// The worker lcore ids: the first `n` enabled lcores other than the main one.
pub fn lcore_ids_for_workers(n: usize) -> Result<Vec<u32>, EalError> {
    let mut ids = Vec::with_capacity(n);
    // SAFETY: rte_get_next_lcore only reads EAL's lcore configuration after init.
    let mut id = unsafe { dpdk_sys::rte_get_next_lcore(u32::MAX, 1, 0) };
    while (id as usize) < dpdk_sys::RTE_MAX_LCORE as usize && ids.len() < n {
        ids.push(id);
        // SAFETY: as above.
        id = unsafe { dpdk_sys::rte_get_next_lcore(id, 1, 0) };
    }
    if ids.len() < n {
        // SAFETY: reads EAL configuration after init.
        let total = unsafe { dpdk_sys::rte_lcore_count() };
        return Err(EalError(format!(
            "{n} workers need {} lcores (one main + {n} workers) but EAL has {total}",
            n + 1
        )));
    }
    Ok(ids)
}

type Job = Box<dyn FnOnce() -> i32 + Send>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Box<Job> leaked by launch_on, handed to exactly one lcore.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    // A panic must never unwind across this extern "C" frame.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
        Ok(rc) => rc,
        Err(_) => {
            eprintln!("rvsd: a worker panicked; aborting");
            std::process::abort()
        }
    }
}

/// Runs `f` on worker lcore `lcore` (with `rte_eal_remote_launch`, so
/// `rte_lcore_id()` and mempool caches work there).
pub fn launch_on(lcore: u32, f: impl FnOnce() -> i32 + Send + 'static) -> Result<(), EalError> {
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job) as *mut c_void;
    // SAFETY: trampoline has the lcore_function_t signature and takes ownership of arg.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so arg was not handed over; reclaim it.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
        return Err(EalError(format!("cannot launch lcore {lcore}: {}", super::strerror(rc))));
    }
    Ok(())
}

/// Waits for lcore `lcore` to return and gives its return value.
pub fn wait_lcore(lcore: u32) -> i32 {
    // SAFETY: waiting on a launched lcore from the main lcore.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// The CPU's time-stamp counter (a plain `rdtsc`; cheap enough per burst).
#[inline]
pub fn tsc_cycles() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { dpdk_sys::rvs_rte_get_tsc_cycles() }
}

/// TSC ticks per second, as EAL measured them at start.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL computed during init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}
