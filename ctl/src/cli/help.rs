//! `-h` and `-v`: ipvsadm's `usage_exit` and `version` (`A: ipvsadm.c`),
//! with rvs's schedulers and tunnel types, and its extras appended.

/// The `-v` line (ipvsadm: `ipvsadm v1.31 2019/12/24 (compiled with popt
/// and IPVS v1.2.1)`).
pub fn version(prog: &str) -> String {
    format!("{prog} v{} (rvs; ipvsadm v1.31 compatible, IPVS v1.2.1)\n", crate::VERSION)
}

/// The `-h` text: the version line, then ipvsadm's usage with `prog`.
pub fn usage(prog: &str) -> String {
    let mut out = version(prog);
    out.push_str("Usage:\n");
    for form in [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--start-daemon {master|backup} [daemon-options]",
        "--stop-daemon {master|backup}",
        "-h",
    ] {
        out.push_str(&format!("  {prog} {form}\n"));
    }
    out.push_str(&format!(
        "  {prog} config check|reload|show\n  {prog} ports\n  {prog} neigh\n  {prog} sync\n  {prog} health\n\n"
    ));
    out.push_str(
        "Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port] (not supported by rvs)
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6 (not supported by rvs)
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|sed|nq|sh|mh,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine (none in rvs),
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip (gue and gre are not supported by rvs),
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=0)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
rvs:
  --socket path                       rvsd's control socket (default: $RVS_SOCKET,
                                      else /run/rvs/rvsd.sock)
  --json                              print rvsd's reply as JSON
  config check|reload|show            check, reload or show rvsd's configuration
  ports                               port counters and drop reasons
  neigh                               the neighbour table
  sync                                sync daemons and their counters
  health                              health checks: state, last result, latency, failures
Addresses and ports are numeric only: rvs resolves no names.
",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_names_the_program() {
        let u = usage("ipvsadm");
        assert!(u.starts_with("ipvsadm v"));
        assert!(u.contains("Usage:\n  ipvsadm -A|E virtual-service"));
        assert!(u.contains("  ipvsadm --set tcp tcpfin udp\n"));
        assert!(u.ends_with("rvs resolves no names.\n"));
    }
}
