//! rvsadm and the logic it is built on never link DPDK (issue 14): an
//! operator's CLI must run on a box where DPDK is not installed, and the
//! protocol logic must build and test without libdpdk.
//!
//! Judged by tools outside the code: the dynamic linker's view of the
//! rvsadm binary (`ldd`) and cargo's own dependency graph (`cargo tree`).
use std::process::Command;

#[test]
fn rvsadm_binary_links_no_dpdk_library() {
    let out = Command::new("ldd").arg(env!("CARGO_BIN_EXE_rvsadm")).output().expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd failed: {}", String::from_utf8_lossy(&out.stderr));
    // Not vacuous: ldd did list the binary's libraries.
    assert!(text.contains("libc.so"), "ldd listed no libc:\n{text}");
    let dpdk: Vec<&str> = text.lines().filter(|l| l.contains("librte_") || l.contains("libdpdk")).collect();
    assert!(dpdk.is_empty(), "rvsadm links DPDK:\n{}", dpdk.join("\n"));
}

#[test]
fn ctl_conf_and_dataplane_logic_do_not_depend_on_dpdk_sys() {
    for package in ["ctl", "conf", "dataplane"] {
        let out = Command::new(env!("CARGO"))
            .args(["tree", "--locked", "--offline", "-e", "normal,build", "--prefix", "none", "-p", package])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo tree");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.lines().next().is_some_and(|l| l.starts_with(package)), "cargo tree -p {package}:\n{text}");
        let sys: Vec<&str> =
            text.lines().filter(|l| l.starts_with("dpdk-sys") || l.starts_with("dataplane-io")).collect();
        assert!(sys.is_empty(), "{package} depends on DPDK: {sys:?}");
    }
    // Not vacuous: the same query does see DPDK under the I/O crate.
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-e", "normal,build", "--prefix", "none", "-p", "dataplane-io"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("dpdk-sys")));
}
