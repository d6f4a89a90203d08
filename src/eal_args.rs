//! The EAL command line rvsd derives from its config.
use std::path::Path;

/// The name EAL gives the device: a vdev's name (before the first comma) or the
/// PCI address in its full `DDDD:BB:DD.F` form.
pub fn device_name(device: &str) -> String {
    let dev = conf::Device::parse(device);
    if dev.pci && dev.name.matches(':').count() == 1 {
        format!("0000:{}", dev.name)
    } else {
        dev.name.to_owned()
    }
}

fn has_flag(args: &[String], flags: &[&str]) -> bool {
    args.iter().any(|a| flags.iter().any(|f| a == f || a.starts_with(&format!("{f}="))))
}

/// A file prefix stable for one config file and distinct between config files,
/// so several rvsd run side by side and each keeps a predictable telemetry
/// socket (`/var/run/dpdk/<prefix>/dpdk_telemetry.v2`).
pub fn file_prefix_for(config: &Path) -> String {
    let abs = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    // FNV-1a: tiny and stable across Rust releases (unlike DefaultHasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in abs.to_string_lossy().bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let stem: String = stem.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(16).collect();
    format!("rvs-{stem}-{h:08x}")
}

/// The whole EAL argv (argv[0] included), and the number of CPUs it puts lcores on.
pub struct EalPlan {
    pub argv: Vec<String>,
    pub file_prefix: String,
    /// Some((lcores, cpus)) when rvsd chose the lcore layout and lcores outnumber CPUs.
    pub shared_cores: Option<(usize, usize)>,
}

pub fn plan(config_path: &Path, cfg: &conf::Config, cpus: &[usize]) -> EalPlan {
    let user = &cfg.dataplane.eal_args;
    let mut argv = vec!["rvsd".to_owned()];
    let mut shared_cores = None;
    if !has_flag(user, &["-l", "-c", "--lcores"]) && !user.iter().any(|a| a.starts_with("-l") || a.starts_with("-c")) {
        // One main lcore plus one per worker, spread over the CPUs we may use.
        let n = usize::from(cfg.dataplane.workers) + 1;
        let cpus: Vec<usize> = if cpus.is_empty() { vec![0] } else { cpus.to_vec() };
        let map: Vec<String> = (0..n).map(|l| format!("{l}@{}", cpus[l % cpus.len()])).collect();
        argv.push("--lcores".into());
        argv.push(map.join(","));
        if n > cpus.len() {
            shared_cores = Some((n, cpus.len()));
        }
    }
    let file_prefix = match user.iter().position(|a| a == "--file-prefix") {
        Some(i) => user.get(i + 1).cloned().unwrap_or_default(),
        None => match user.iter().find_map(|a| a.strip_prefix("--file-prefix=")) {
            Some(p) => p.to_owned(),
            None => {
                let p = file_prefix_for(config_path);
                argv.push("--file-prefix".into());
                argv.push(p.clone());
                p
            }
        },
    };
    argv.extend(user.iter().cloned());
    for port in &cfg.port {
        if port.is_pci() {
            argv.push("-a".into());
        } else {
            argv.push("--vdev".into());
        }
        argv.push(port.device.clone());
    }
    EalPlan { argv, file_prefix, shared_cores }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_device_names() {
        assert_eq!(device_name("03:00.1"), "0000:03:00.1");
        assert_eq!(device_name("net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap"), "net_pcap0");
    }

    #[test]
    fn file_prefix_is_stable_and_distinct() {
        let a = file_prefix_for(Path::new("/nonexistent/a/rvs.toml"));
        assert_eq!(a, file_prefix_for(Path::new("/nonexistent/a/rvs.toml")));
        assert_ne!(a, file_prefix_for(Path::new("/nonexistent/b/rvs.toml")));
        assert!(a.starts_with("rvs-rvs-"));
    }
}
