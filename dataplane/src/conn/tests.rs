use std::sync::atomic::Ordering::Relaxed;

use conf::Method;

use super::*;
use crate::service::DestShared;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn conn(cport: u16, dest: &Arc<DestShared>) -> Conn {
    Conn::new(
        6,
        ip("192.0.2.1"),
        cport,
        ip("10.0.0.100"),
        80,
        ip("10.0.2.11"),
        80,
        Method::Masq as u16,
        Some(dest.clone()),
    )
}

fn template(dest: &Arc<DestShared>, timeout: u32) -> Conn {
    let mut t = Conn::new(
        6,
        ip("192.0.2.0"),
        0,
        ip("10.0.0.100"),
        80,
        ip("10.0.2.11"),
        80,
        flags::TEMPLATE | Method::Route as u16,
        Some(dest.clone()),
    );
    t.timeout = timeout;
    t
}

#[test]
fn lookups_in_out_and_template() {
    let d = Arc::new(DestShared::default());
    let mut t = ConnTable::new(16, 42);
    let a = t.insert(conn(1000, &d), 0).unwrap();
    let tp = t.insert(template(&d, 360), 0).unwrap();
    assert_eq!(t.lookup_in(6, ip("192.0.2.1"), 1000, ip("10.0.0.100"), 80), Some(a));
    assert_eq!(t.lookup_in(6, ip("192.0.2.1"), 1000, ip("10.0.0.101"), 80), None);
    assert_eq!(t.lookup_in(17, ip("192.0.2.1"), 1000, ip("10.0.0.100"), 80), None);
    assert_eq!(t.lookup_out(6, ip("10.0.2.11"), 80, ip("192.0.2.1"), 1000), Some(a));
    assert_eq!(t.lookup_out(6, ip("10.0.2.12"), 80, ip("192.0.2.1"), 1000), None);
    assert_eq!(t.lookup_template(6, ip("192.0.2.0"), ip("10.0.0.100"), 80), Some(tp));
    assert_eq!(t.lookup_in(6, ip("192.0.2.0"), 0, ip("10.0.0.100"), 80), None, "templates are not connections");
    assert_eq!(d.inactconns.load(Relaxed), 1);
    assert_eq!(d.persistconns.load(Relaxed), 1);
    t.unhash(tp);
    assert_eq!(t.lookup_template(6, ip("192.0.2.0"), ip("10.0.0.100"), 80), None);
}

#[test]
fn a_full_table_refuses_and_a_freed_slot_is_reused() {
    let d = Arc::new(DestShared::default());
    let mut t = ConnTable::new(3, 1);
    for p in 0..3 {
        t.insert(conn(p, &d), 0).unwrap();
    }
    assert_eq!(t.insert(conn(9, &d), 0), Err(TableFull));
    let victim = t.lookup_in(6, ip("192.0.2.1"), 1, ip("10.0.0.100"), 80).unwrap();
    t.force_expire(victim);
    assert_eq!(t.len(), 2);
    assert!(t.insert(conn(9, &d), 0).is_ok());
    assert_eq!(d.inactconns.load(Relaxed), 3);
}

#[test]
fn entries_expire_when_their_timeout_runs_out_and_not_before() {
    let d = Arc::new(DestShared::default());
    let mut t = ConnTable::new(8, 7);
    let a = t.insert(conn(1, &d), 10).unwrap();
    t.touch(a, 900, 10); // ESTABLISHED-like
    let mut gone = Vec::new();
    t.expire(909, |c, e| gone.push((c.cport, e)));
    assert!(gone.is_empty());
    // A packet at 500 pushes expiry to 1400 (lazy re-arm: only the field moves).
    t.touch(a, 900, 500);
    t.expire(1399, |c, e| gone.push((c.cport, e)));
    assert!(gone.is_empty(), "re-armed by the packet at 500");
    t.expire(1400, |c, e| gone.push((c.cport, e)));
    assert_eq!(gone, vec![(1, Expired::Freed)]);
    assert!(t.is_empty());
    assert_eq!(d.total(), 0);
}

#[test]
fn long_timeouts_survive_wheel_turns() {
    let d = Arc::new(DestShared::default());
    let mut t = ConnTable::new(8, 7);
    let a = t.insert(conn(1, &d), 0).unwrap();
    t.touch(a, 28800, 0);
    let mut n = 0;
    for now in (0..28800).step_by(997) {
        t.expire(now, |_, _| n += 1);
    }
    assert_eq!(n, 0);
    t.expire(28800, |_, _| n += 1);
    assert_eq!(n, 1);
}

#[test]
fn templates_outlive_children_in_60s_steps() {
    let d = Arc::new(DestShared::default());
    let mut t = ConnTable::new(8, 3);
    let tp = t.insert(template(&d, 360), 0).unwrap();
    let c = t.insert(conn(5, &d), 0).unwrap();
    t.set_control(c, tp);
    t.touch(c, 900, 0);
    let mut log = Vec::new();
    t.expire(360, |c, e| log.push((c.is_template(), e)));
    assert_eq!(log, vec![(true, Expired::Rearmed)]);
    assert_eq!(t.get(tp).unwrap().timeout, 60);
    t.expire(420, |c, e| log.push((c.is_template(), e)));
    assert_eq!(log.len(), 2, "re-armed again at 420: child still alive");
    // The child goes at 900; the template at the next 60 s check after it.
    t.expire(900, |c, e| log.push((c.is_template(), e)));
    assert!(log.contains(&(false, Expired::Freed)));
    assert_eq!(t.get(tp).unwrap().n_control, 0);
    t.expire(960, |c, e| log.push((c.is_template(), e)));
    assert_eq!(log.last(), Some(&(true, Expired::Freed)));
    assert!(t.is_empty());
    assert_eq!(d.persistconns.load(Relaxed), 0);
}

#[test]
fn force_expiring_the_last_child_takes_an_unassured_template_along() {
    let d = Arc::new(DestShared::default());
    let mut t = ConnTable::new(8, 3);
    let tp = t.insert(template(&d, 360), 0).unwrap();
    let c = t.insert(conn(5, &d), 0).unwrap();
    t.set_control(c, tp);
    t.force_expire(c);
    assert!(t.is_empty());

    let tp = t.insert(template(&d, 360), 0).unwrap();
    t.get_mut(tp).unwrap().state = TEMPLATE_ASSURED;
    let c = t.insert(conn(6, &d), 0).unwrap();
    t.set_control(c, tp);
    t.force_expire(c);
    assert_eq!(t.len(), 1, "an ASSURED template stays");
}

#[test]
fn tcp_state_moves_between_active_and_inactive() {
    let d = Arc::new(DestShared::default());
    let mut t = ConnTable::new(8, 3);
    let c = t.insert(conn(5, &d), 0).unwrap();
    assert_eq!((d.activeconns.load(Relaxed), d.inactconns.load(Relaxed)), (0, 1));
    t.set_tcp_state(c, TcpState::SynRecv);
    assert_eq!((d.activeconns.load(Relaxed), d.inactconns.load(Relaxed)), (1, 0));
    t.set_tcp_state(c, TcpState::Established);
    assert_eq!((d.activeconns.load(Relaxed), d.inactconns.load(Relaxed)), (1, 0));
    t.set_tcp_state(c, TcpState::FinWait);
    assert_eq!((d.activeconns.load(Relaxed), d.inactconns.load(Relaxed)), (0, 1));
    t.set_tcp_state(c, TcpState::Established);
    t.force_expire(c);
    assert_eq!(d.total(), 0);
    assert_eq!(d.activeconns.load(Relaxed), 0);
}

#[test]
fn entry_size_is_tracked() {
    // Issue target: at most 128 bytes of memory per connection.
    assert!(ConnTable::bytes_per_entry() <= 128, "{}", ConnTable::bytes_per_entry());
    assert_eq!(std::mem::size_of::<Conn>(), 64, "one cache line");
}
