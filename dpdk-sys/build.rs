//! Finds Debian's DPDK with pkg-config, generates bindings with bindgen and
//! compiles the C shims for DPDK's static inline functions.
use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    let dpdk = pkg_config::Config::new().atleast_version("22.11").probe("libdpdk").unwrap_or_else(|e| {
        panic!("DPDK not found with pkg-config libdpdk ({e}); run scripts/setup (installs libdpdk-dev)")
    });

    // pkg-config's cflags carry `-include rte_config.h -march=corei7`: both the shim
    // and bindgen must see the same configuration as the DPDK build.
    let extra: Vec<String> = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();

    let mut build = cc::Build::new();
    build.file("shim.c").include(".").opt_level(3).warnings(true);
    for f in &extra {
        build.flag(f);
    }
    build.compile("rvs_dpdk_shim");

    let mut bg = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg("-I.")
        .clang_args(extra.iter())
        .allowlist_function("rte_.*|rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|rte_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        // Packed-and-aligned structs bindgen cannot represent; rvs never reads them.
        .opaque_type("rte_arp_ipv4|rte_arp_hdr|rte_l2tpv2_combined_msg_hdr|rte_gtp_psc_generic_hdr")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for p in &dpdk.include_paths {
        bg = bg.clang_arg(format!("-I{}", p.display()));
    }
    let bindings = bg.generate().expect("bindgen failed on DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).expect("writing bindings.rs");
}
