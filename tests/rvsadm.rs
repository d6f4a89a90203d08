//! The real rvsadm binary against a running rvsd: ipvsadm command lines from
//! the LVS literature, output compared with the exact text ipvsadm prints
//! (specs/ipvs.md §6.2), errors and exit codes, -S/-R round trip, atomic
//! restore, the ipvsadm symlink, and a second rvsd refused on the same socket.
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{rvsadm, Daemon};
use common::RVSD;

#[test]
fn ipvsadm_lines_from_the_literature_work_and_list_exactly() {
    let d = Daemon::start();
    d.ok("-A -t 192.168.7.250:80 -s rr -p 60");
    d.ok("-a -t 192.168.7.250:80 -r 10.0.1.11:80 -g");
    d.ok("-a -t 192.168.7.250:80 -r 10.0.1.12:80 -g -w 2");
    d.ok("-A -t 172.16.0.113:2100 -s wlc");
    d.ok("-a -t 172.16.0.113:2100 -r 172.16.0.114:2100 -m -w 3");
    d.ok("-e -t 172.16.0.113:2100 -r 172.16.0.114:2100 -w 0");
    d.ok("-A -f 10 -s wrr -p");
    d.ok("-a -f 10 -r 10.0.1.13:0 -m");
    d.ok("--set 28800 30 300");
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  172.16.0.113:2100 wlc
  -> 172.16.0.114:2100            Route   0      0          0         
TCP  192.168.7.250:80 rr persistent 60
  -> 10.0.1.11:80                 Route   1      0          0         
  -> 10.0.1.12:80                 Route   2      0          0         
FWM  10 wrr persistent 360
  -> 10.0.1.13:0                  Masq    1      0          0         
";
    // -e without -m resets the forwarding method to -g (full replacement, §6.1).
    assert_eq!(d.ok("-Ln"), expected);
    assert_eq!(d.ok("-L -n"), expected);
    assert_eq!(d.ok("-L --timeout"), "Timeout (tcp tcpfin udp): 28800 30 300\n");
    assert_eq!(
        d.ok("-Lnc"),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
    // The ipvsadm symlink behaves identically.
    let link = d.dir.path().join("ipvsadm");
    std::os::unix::fs::symlink(rvsadm(), &link).unwrap();
    let o = d.run_as(&link, "-Ln", None);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), expected);
}

#[test]
fn errors_have_ipvsadm_texts_and_exit_codes() {
    let d = Daemon::start();
    d.ok("-A -t 10.0.0.1:80 -s rr");
    let o = d.run_as(&rvsadm(), "-A -t 10.0.0.1:80 -s rr", None);
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "Service already exists\n");
    let o = d.run_as(&rvsadm(), "-a -t 10.0.0.9:80 -r 10.0.1.11", None);
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "Service not defined\n");
    let o = d.run_as(&rvsadm(), "-A -t 10.0.0.2:0 -s rr", None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Zero port specified for non-persistent service"));
    // A malformed request on the socket gets an error and the daemon carries on.
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    s.write_all(b"{this is not json\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert!(line.contains("malformed request"), "{line}");
    assert!(d.ok("-Ln").contains("TCP  10.0.0.1:80 rr"));
}

#[test]
fn save_and_restore_round_trip_and_restore_is_atomic() {
    let d = Daemon::start();
    let rules = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.10.1:80 -m -w 1
-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0
-a -t 10.0.0.1:443 -r 192.168.10.1:443 -g -w 1
-A -u 10.0.0.1:53 -s rr -o
-A -f 1 -s sh -b sh-fallback,sh-port
-a -f 1 -r 192.168.10.1:0 -i -w 1 --tun-type ipip
";
    let o = d.run_as(&rvsadm(), "-R", Some(rules));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(d.ok("-S -n"), rules);
    // A bad line anywhere aborts the whole restore: nothing changes.
    let bad = "-A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.9:80 -r 10.0.1.1:80\n";
    let o = d.run_as(&rvsadm(), "-R", Some(bad));
    assert!(!o.status.success());
    assert_eq!(d.ok("-S -n"), rules, "nothing of the failed restore was applied");
    d.ok("-C");
    assert_eq!(d.ok("-S -n"), "");
}

#[test]
fn a_second_rvsd_on_the_same_socket_is_refused() {
    let d = Daemon::start();
    let o = Command::new(RVSD).arg("--config").arg(d.dir.path().join("rvs.toml")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another rvsd is running"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The first one still answers.
    d.ok("-Ln");
}

#[test]
fn config_reload_applies_services_and_keeps_state_on_errors() {
    let d = Daemon::start();
    let cfg = d.dir.path().join("rvs.toml");
    let base = std::fs::read_to_string(&cfg).unwrap();
    let svc = "\n[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.5:53\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"10.0.1.21:53\"\nmethod = \"masq\"\n";
    std::fs::write(&cfg, format!("{base}{svc}")).unwrap();
    d.ok("config reload");
    assert!(d.ok("-Ln").contains("UDP  10.0.0.5:53 rr\n  -> 10.0.1.21:53                 Masq    1      0          0"));
    // A broken file is refused with its reason; the running state stays.
    std::fs::write(&cfg, format!("{base}{svc}\n[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.6:0\"\n")).unwrap();
    let o = d.run_as(&rvsadm(), "config reload", None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Zero port specified for non-persistent service"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(d.ok("-Ln").contains("UDP  10.0.0.5:53 rr"));
    // SIGHUP does the same as `rvsadm config reload`.
    std::fs::write(&cfg, &base).unwrap();
    let pid = d.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let started = Instant::now();
    while d.ok("-Ln").contains("10.0.0.5") {
        assert!(started.elapsed() < Duration::from_secs(5), "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(d.dir.path().join("rvsd.log")).unwrap().contains("SIGHUP: configuration reloaded"));
}

#[test]
fn zeroing_counters_and_json_listings() {
    let d = Daemon::start();
    d.ok("-A -t 10.0.0.1:80 -s rr");
    d.ok("-a -t 10.0.0.1:80 -r 10.0.1.11:80 -m");
    d.ok("-Z");
    let stats = d.ok("-Ln --stats");
    assert_eq!(
        stats,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
         \x20 -> RemoteAddress:Port\n\
         TCP  10.0.0.1:80                         0        0        0        0        0\n\
         \x20 -> 10.0.1.11:80                        0        0        0        0        0\n"
    );
    let json = d.ok("-Ln --json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["services"]["services"][0]["dests"][0]["spec"]["addr"], "10.0.1.11", "{json}");
}

#[test]
fn many_clients_at_once() {
    let d = Daemon::start();
    d.ok("-A -u 10.0.0.1:53 -s rr");
    let handles: Vec<_> = (0..16u8)
        .map(|i| {
            let sock = d.socket();
            std::thread::spawn(move || {
                let run = |args: String| {
                    Command::new(rvsadm()).args(args.split_whitespace()).env("RVS_SOCKET", &sock).output().unwrap()
                };
                let add = run(format!("-a -u 10.0.0.1:53 -r 10.0.1.{}:53 -m", 10 + i));
                let list = run("-Ln".to_owned());
                (add.status.success(), list.status.success())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), (true, true));
    }
    assert_eq!(d.ok("-Ln").lines().filter(|l| l.contains("Masq")).count(), 16);
}

#[test]
fn mark_rules_with_iptables_commands() {
    let d = Daemon::start();
    d.ok("mark -A PREROUTING -d 10.0.0.100 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 10");
    d.ok("mark -A PREROUTING -d 10.0.0.100 -p udp --dport 53 -j MARK --set-mark 0x14");
    d.ok("mark -I PREROUTING 1 -s 192.0.2.0/24 -j RETURN");
    assert_eq!(
        d.ok("mark -S"),
        "-P PREROUTING ACCEPT\n\
         -A PREROUTING -s 192.0.2.0/24 -j RETURN\n\
         -A PREROUTING -d 10.0.0.100/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0xa/0xffffffff\n\
         -A PREROUTING -d 10.0.0.100/32 -p udp -m udp --dport 53 -j MARK --set-xmark 0x14/0xffffffff\n"
    );
    assert_eq!(
        d.ok("mark -L -n -v --line-numbers"),
        "Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 RETURN     0    --  *      *       192.0.2.0/24         0.0.0.0/0           
2        0     0 MARK       6    --  *      *       0.0.0.0/0            10.0.0.100           multiport dports 80,443 MARK set 0xa
3        0     0 MARK       17   --  *      *       0.0.0.0/0            10.0.0.100           udp dpt:53 MARK set 0x14
"
    );
    // Delete by specification and by number; errors as iptables.
    d.ok("mark -D PREROUTING -s 192.0.2.0/24 -j RETURN");
    d.ok("mark -D PREROUTING 2");
    assert_eq!(d.ok("mark -S").lines().count(), 2);
    let o = d.run_as(&rvsadm(), "mark -D PREROUTING 5", None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "Index of deletion too big.\n");
    let o = d.run_as(&rvsadm(), "mark -A PREROUTING --dport 80 -j MARK --set-mark 1", None);
    assert_eq!(o.status.code(), Some(2));
    d.ok("mark -F");
    assert_eq!(d.ok("mark -S"), "-P PREROUTING ACCEPT\n");
}

/// iptables itself is the judge of `mark -L` and `-S`: the same rules go
/// into iptables-legacy's mangle table in a scratch network namespace and
/// into rvsd, and every listing form must print the same bytes (no traffic:
/// every counter is 0 on both sides).
#[test]
fn mark_listings_match_iptables() {
    let rules = [
        "-d 10.0.0.100 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 10",
        "-p all -j MARK --set-mark 1",
        "-s 10.1.0.0/16 ! -d 10.0.0.1 -p udp --sport 1000:2000 ! --dport 53 -j MARK --set-xmark 0x5/0xff",
        "-i p0 -p tcp -m multiport ! --ports 80,8000:8080 -j RETURN",
        "-i eth+ -p udp -m multiport --sports 53,123 -j MARK --set-mark 0x20",
        "-p icmp",
        "! -p tcp -j MARK --and-mark 0xf0",
        "-s 192.0.2.0/24 -j MARK --or-mark 3",
        "-d 0.0.0.0/0 -j MARK --xor-mark 3",
        "-p tcp --dport 22 -j ACCEPT",
        "-p tcp --sport 1024: -j MARK --set-mark 0",
    ];
    let ns = format!("rvsipt{}", std::process::id());
    let ipt = |args: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "iptables-legacy", "-t", "mangle"])
            .args(args.split_whitespace())
            .output()
            .expect("iptables-legacy (scripts/setup installs iptables)");
        assert!(out.status.success(), "iptables {args}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(Command::new("ip").args(["netns", "add", &ns]).status().unwrap().success());
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _ns = Ns(ns.clone());
    let d = Daemon::start();
    for r in rules {
        ipt(&format!("-A PREROUTING {r}"));
        d.ok(&format!("mark -A PREROUTING {r}"));
    }
    for list in [
        "-L PREROUTING -n",
        "-L PREROUTING -n -v",
        "-L PREROUTING -n -v --line-numbers",
        "-L PREROUTING -n -v -x",
        "-L PREROUTING --line-numbers",
        "-L PREROUTING -v",
        "-S PREROUTING",
    ] {
        assert_eq!(d.ok(&format!("mark {list}")), ipt(list), "mark {list}");
    }
}
