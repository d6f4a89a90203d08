//! How the workers share the ports' queues and talk to each other.
//!
//! [`Plan::new`] decides, from the number of workers and the queues each port
//! was given, which worker polls which rx queue, which worker transmits on
//! which tx queue, and which rings join the workers; it touches nothing, so
//! its rules are tested here. [`wire`] then creates the rings and hands the
//! queues to the workers' setups as the plan says.
//!
//! The rules:
//! - rx queue `q` of every port is polled by worker `q % workers`: every queue
//!   is polled, by exactly one worker.
//! - worker `w` transmits on tx queue `w` of a port when the port has one;
//!   otherwise it sends through worker `w % tx_queues`, which has one, over a
//!   transmit ring (one per such pair of workers).
//! - every ordered pair of distinct workers has a hand-over ring, for packets
//!   of flows the other worker owns.
//! - the exception path (live mode) has a ring from each worker, and sends
//!   through worker 0, which has a tx queue on every port.
use crate::worker::WorkerSetup;
use crate::{ring, EalError, Port, RingConsumer, RingProducer};

/// Slots of a hand-over or transmit ring between two workers.
pub const WORKER_RING: u32 = 4096;
/// Slots of each ring to and from the exception path.
pub const EXCEPTION_RING: u32 = 1024;

/// The queues a port was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortQueues {
    pub rx: u16,
    pub tx: u16,
}

/// One worker's share of the ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerPlan {
    /// (port index, rx queue) pairs this worker polls.
    pub rx: Vec<(u16, u16)>,
    /// Per port index: this worker's own tx queue there.
    pub tx: Vec<Option<u16>>,
    /// Per port index: the worker to send through where `tx` has no queue.
    pub tx_via: Vec<Option<u16>>,
}

/// Queue and ring assignment for `workers` workers over the ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub workers: Vec<WorkerPlan>,
    /// (from, to): `from` hands `to` the packets of flows `to` owns.
    pub owner_rings: Vec<(usize, usize)>,
    /// (from, to): `from` hands `to` packets to send on `to`'s tx queues.
    pub tx_rings: Vec<(usize, usize)>,
}

impl Plan {
    /// The plan for `workers` workers (at least one) over `ports`.
    pub fn new(workers: usize, ports: &[PortQueues]) -> Plan {
        let workers = workers.max(1);
        let mut plan =
            Plan { workers: vec![WorkerPlan::default(); workers], owner_rings: Vec::new(), tx_rings: Vec::new() };
        for (pi, p) in ports.iter().enumerate() {
            for q in 0..p.rx {
                plan.workers[usize::from(q) % workers].rx.push((pi as u16, q));
            }
            let ntx = usize::from(p.tx.max(1));
            for (w, wp) in plan.workers.iter_mut().enumerate() {
                let own = (w < usize::from(p.tx)).then_some(w as u16);
                wp.tx.push(own);
                wp.tx_via.push(if own.is_some() { None } else { Some((w % ntx) as u16) });
            }
        }
        for i in 0..workers {
            for j in 0..workers {
                if i != j {
                    plan.owner_rings.push((i, j));
                }
            }
        }
        for (w, wp) in plan.workers.iter().enumerate() {
            let mut targets: Vec<usize> = wp.tx_via.iter().flatten().map(|&v| usize::from(v)).collect();
            targets.sort_unstable();
            targets.dedup();
            plan.tx_rings.extend(targets.into_iter().map(|t| (w, t)));
        }
        plan
    }
}

/// Takes the ports' queues and creates the rings between workers, filling
/// each setup's queue and ring fields as `plan` says. The setups come in with
/// those fields empty (`setups.len()` workers, `plan` made for as many).
pub fn wire(plan: &Plan, ports: &mut [Port], setups: &mut [WorkerSetup]) -> Result<(), EalError> {
    let workers = setups.len();
    for setup in setups.iter_mut() {
        setup.to_owner = (0..workers).map(|_| None).collect();
        setup.tx_rings = (0..workers).map(|_| None).collect();
    }
    for &(i, j) in &plan.owner_rings {
        let (p, c) = ring(&format!("rvs_own_{i}_{j}"), WORKER_RING)?;
        setups[i].to_owner[j] = Some(p);
        setups[j].from_others.push(c);
    }
    let mut queues = Vec::new();
    for port in ports.iter_mut() {
        let (rx, tx) = port.take_queues().ok_or_else(|| EalError(format!("port {}: queues already taken", port.id)))?;
        queues.push((rx.into_iter().map(Some).collect::<Vec<_>>(), tx.into_iter().map(Some).collect::<Vec<_>>()));
    }
    for (setup, wp) in setups.iter_mut().zip(&plan.workers) {
        for &(pi, q) in &wp.rx {
            if let Some(rxq) = queues.get_mut(usize::from(pi)).and_then(|(rx, _)| rx.get_mut(usize::from(q))?.take()) {
                setup.rx.push((pi, rxq));
            }
        }
        for (pi, own) in wp.tx.iter().enumerate() {
            let q = own.and_then(|q| queues.get_mut(pi)?.1.get_mut(usize::from(q))?.take());
            setup.tx.push(q);
        }
        setup.tx_via = wp.tx_via.clone();
    }
    for &(from, to) in &plan.tx_rings {
        let (p, c) = ring(&format!("rvs_tx_{from}_{to}"), WORKER_RING)?;
        setups[from].tx_rings[to] = Some(p);
        setups[to].tx_from.push(c);
    }
    Ok(())
}

/// The rings of the exception path: one from each worker (set in its setup,
/// the consumers returned), and one back to worker 0, which transmits what
/// the exception path sends (the producer returned).
pub fn wire_exception(setups: &mut [WorkerSetup]) -> Result<(Vec<RingConsumer>, RingProducer), EalError> {
    let mut from_workers = Vec::new();
    for (w, setup) in setups.iter_mut().enumerate() {
        let (p, c) = ring(&format!("rvs_exc_{w}"), EXCEPTION_RING)?;
        setup.exception = Some(p);
        from_workers.push(c);
    }
    let (to_tx, tx_c) = ring("rvs_exc_tx", EXCEPTION_RING)?;
    if let Some(s) = setups.first_mut() {
        s.tx_from.push(tx_c);
    }
    Ok((from_workers, to_tx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pq(rx: u16, tx: u16) -> PortQueues {
        PortQueues { rx, tx }
    }

    #[test]
    fn one_worker_owns_everything_and_needs_no_ring() {
        let p = Plan::new(1, &[pq(1, 1), pq(1, 1)]);
        assert_eq!(p.workers[0].rx, vec![(0, 0), (1, 0)]);
        assert_eq!(p.workers[0].tx, vec![Some(0), Some(0)]);
        assert_eq!(p.workers[0].tx_via, vec![None, None]);
        assert!(p.owner_rings.is_empty() && p.tx_rings.is_empty());
    }

    #[test]
    fn two_workers_on_a_port_with_one_queue_pair_send_through_worker_0() {
        // af_packet with one queue pair: worker 1 polls nothing there and
        // transmits through worker 0.
        let p = Plan::new(2, &[pq(1, 1)]);
        assert_eq!(p.workers[0].rx, vec![(0, 0)]);
        assert!(p.workers[1].rx.is_empty());
        assert_eq!(p.workers[1].tx, vec![None]);
        assert_eq!(p.workers[1].tx_via, vec![Some(0)]);
        assert_eq!(p.owner_rings, vec![(0, 1), (1, 0)]);
        assert_eq!(p.tx_rings, vec![(1, 0)]);
    }

    #[test]
    fn three_workers_two_tx_queues_wrap_round() {
        let p = Plan::new(3, &[pq(4, 2)]);
        assert_eq!(p.workers[0].rx, vec![(0, 0), (0, 3)]);
        assert_eq!(p.workers[1].rx, vec![(0, 1)]);
        assert_eq!(p.workers[2].rx, vec![(0, 2)]);
        assert_eq!(p.workers[2].tx_via, vec![Some(0)]);
        assert_eq!(p.tx_rings, vec![(2, 0)]);
        assert_eq!(p.owner_rings.len(), 6);
    }

    proptest! {
        /// For any number of workers and ports: every rx queue is polled by
        /// exactly one worker; every worker reaches every port either on its
        /// own tx queue or through a worker that has one, over a ring the
        /// plan creates; no two workers own one tx queue; hand-over rings
        /// join every ordered pair of distinct workers.
        #[test]
        fn every_queue_is_used_once_and_every_port_is_reachable(
            workers in 1usize..9,
            ports in proptest::collection::vec((1u16..9, 1u16..9), 0..4),
        ) {
            let ports: Vec<PortQueues> = ports.into_iter().map(|(rx, tx)| pq(rx, tx)).collect();
            let p = Plan::new(workers, &ports);
            prop_assert_eq!(p.workers.len(), workers);
            for (pi, port) in ports.iter().enumerate() {
                let mut polled: Vec<u16> = p.workers.iter()
                    .flat_map(|w| w.rx.iter().filter(|r| usize::from(r.0) == pi).map(|r| r.1)).collect();
                polled.sort_unstable();
                prop_assert_eq!(polled, (0..port.rx).collect::<Vec<_>>());
                let mut owned: Vec<u16> = p.workers.iter().filter_map(|w| w.tx[pi]).collect();
                let n = owned.len();
                owned.sort_unstable();
                owned.dedup();
                prop_assert_eq!(owned.len(), n);
                prop_assert!(owned.iter().all(|&q| q < port.tx));
                for (w, wp) in p.workers.iter().enumerate() {
                    match (wp.tx[pi], wp.tx_via[pi]) {
                        (Some(_), None) => {}
                        (None, Some(v)) => {
                            let v = usize::from(v);
                            prop_assert!(p.workers[v].tx[pi].is_some());
                            prop_assert!(p.tx_rings.contains(&(w, v)));
                        }
                        other => prop_assert!(false, "worker {} port {}: {:?}", w, pi, other),
                    }
                }
            }
            prop_assert_eq!(p.owner_rings.len(), workers * (workers - 1));
            prop_assert!(p.owner_rings.iter().all(|&(i, j)| i != j && i < workers && j < workers));
        }
    }
}
