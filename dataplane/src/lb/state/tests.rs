//! Tests of packets on an existing connection: state tables and counts.
use std::sync::atomic::Ordering::Relaxed;

use crate::lb::test_util::*;
use crate::proto::TcpState;
use crate::sched::SchedKind;
use crate::service::Method;
use crate::snapshot::Knobs;
use crate::wire::tcp::flags::{ACK, FIN, SYN};

#[test]
fn dr_connections_use_the_input_only_table_and_count_active_from_the_syn() {
    let mut r = Rig::new();
    let d = vec![dest(1, 80, Method::Route, 1)];
    let shared = d[0].shared.clone();
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d)], Knobs::default());
    r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    assert_eq!((shared.activeconns.load(Relaxed), shared.inactconns.load(Relaxed)), (1, 0), "SYN_RECV is active");
    r.send(&s, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    r.send(&s, &tcp(client(1), 1000, VIP, 80, FIN | ACK), 0);
    let (_, c) = r.lb.conns.iter().next().unwrap();
    // INPUT_ONLY: ES + fin → FIN_WAIT (the INPUT table would say CLOSE_WAIT).
    assert_eq!(c.tcp_state(), TcpState::FinWait);
    assert_eq!(c.timeout, 120);
    assert_eq!((shared.activeconns.load(Relaxed), shared.inactconns.load(Relaxed)), (0, 1));
}
