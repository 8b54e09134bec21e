//! The cell's transitions, one at a time (the invariants are checked by
//! every lock release in these debug builds).

use super::*;
use crate::msg;
use crate::port::DefaultHandler;
use std::sync::Arc;

fn cell() -> PortCell {
    PortCell::new(
        PortId::from_parts("n", "p"),
        0,
        Handlers::new(DefaultHandler::Ignore),
    )
}

fn monitor() -> MonitorAction {
    MonitorAction::Callback(Box::new(|_| {}))
}

#[test]
fn push_schedules_once_and_batches_take_turns() {
    let c = cell();
    assert!(matches!(c.push(Item::Msg(msg![1])), Pushed::Schedule));
    assert!(matches!(c.push(Item::Msg(msg![2])), Pushed::Done));
    let mut batch = VecDeque::new();
    c.take_batch(&mut batch);
    assert_eq!(batch.len(), 2);
    assert!(
        matches!(c.push(Item::Msg(msg![3])), Pushed::Done),
        "still scheduled"
    );
    batch.clear();
    assert!(matches!(c.end_batch(&mut batch, || true), BatchEnd::Yield));
    assert!(matches!(c.end_batch(&mut batch, || false), BatchEnd::Next));
    assert_eq!(batch.len(), 1);
    batch.clear();
    assert!(matches!(c.end_batch(&mut batch, || false), BatchEnd::Idle));
    assert!(matches!(c.push(Item::Msg(msg![4])), Pushed::Schedule));
}

#[test]
fn direct_thread_delivery_never_overtakes_the_inbox() {
    let c = cell();
    c.init_thread_port();
    assert!(matches!(c.push(Item::Msg(msg![1])), Pushed::Done));
    assert_eq!(c.arrivals_len(), Some(1));
    assert!(matches!(
        c.push(Item::Kill(Reason::normal())),
        Pushed::Schedule
    ));
    assert!(matches!(c.push(Item::Msg(msg![2])), Pushed::Done));
    assert_eq!(c.arrivals_len(), Some(1), "queued behind the kill");
    let mut arrivals = VecDeque::new();
    assert!(c.take_arrivals(&mut arrivals).is_ok());
    assert_eq!(arrivals, VecDeque::from([msg![1]]));
}

#[test]
fn the_slot_holds_the_oldest_arrival_and_the_queue_the_rest() {
    let c = cell();
    c.init_thread_port();
    let slot = c.slot.get().expect("a thread port has a slot");
    let mut arrivals = VecDeque::new();
    c.take_arrivals(&mut arrivals).unwrap();
    assert!(arrivals.is_empty(), "nothing arrived");
    for i in 1..=3 {
        assert!(matches!(c.push(Item::Msg(msg![i])), Pushed::Done));
    }
    assert_eq!(c.arrivals_len(), Some(3));
    assert!(slot.is_full() && slot.arrived.load(Ordering::Relaxed));
    c.take_arrivals(&mut arrivals).unwrap();
    assert_eq!(arrivals, VecDeque::from([msg![1]]), "the slot's first");
    // The slot stays empty while the queue holds messages: 4 goes behind.
    c.push(Item::Msg(msg![4]));
    assert!(!slot.is_full());
    let mut more = VecDeque::new();
    c.take_arrivals(&mut more).unwrap();
    assert_eq!(more, VecDeque::from([msg![2], msg![3], msg![4]]));
    assert!(!slot.arrived.load(Ordering::Relaxed));
    // Both empty: the next message takes the slot again.
    c.push(Item::Msg(msg![5]));
    assert!(slot.is_full() && !slot.arrived.load(Ordering::Relaxed));
    let mut last = VecDeque::new();
    c.take_arrivals(&mut last).unwrap();
    assert_eq!(last, VecDeque::from([msg![5]]));
    assert_eq!(c.arrivals_len(), Some(0));
}

#[test]
fn a_kill_empties_the_slot_and_is_seen_by_the_next_take() {
    let c = cell();
    c.init_thread_port();
    c.push(Item::Msg(msg![1]));
    let slot = c.slot.get().expect("a thread port has a slot");
    assert!(slot.is_full());
    let reason = Reason::die("x");
    assert!(c.die(&reason).is_some());
    assert!(!slot.is_full(), "the message went with the port");
    assert_eq!(c.take_arrivals(&mut VecDeque::new()), Err(reason));
}

#[test]
fn two_senders_and_the_thread_lose_and_reorder_nothing() {
    let c = Arc::new(cell());
    c.init_thread_port();
    let n = 20_000u64;
    let senders: Vec<_> = (0..2u64)
        .map(|s| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    assert!(matches!(c.push(Item::Msg(msg![s, i])), Pushed::Done));
                }
            })
        })
        .collect();
    let mut busy = BusyWait::new(Duration::from_micros(50));
    let mut spin = PreSpin::new(Duration::from_micros(3));
    let (mut next, mut arrivals) = ([0u64; 2], VecDeque::new());
    while next != [n, n] {
        c.take_arrivals(&mut arrivals).unwrap();
        if arrivals.is_empty() {
            // A lost wake-up would time out here.
            let deadline = Instant::now() + Duration::from_secs(60);
            let arrival = c.await_arrival(Some(deadline), &mut busy, &mut spin);
            assert!(matches!(arrival, Arrival::Arrived), "stuck at {next:?}");
            continue;
        }
        for m in arrivals.drain(..) {
            let s = m.u64_at(0).expect("sender") as usize;
            assert_eq!(m.u64_at(1), Some(next[s]), "sender {s}'s order");
            next[s] += 1;
        }
    }
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(c.arrivals_len(), Some(0));
}

#[test]
fn a_kill_racing_the_threads_takes_is_always_seen() {
    for round in 0..200u64 {
        let c = Arc::new(cell());
        c.init_thread_port();
        let sender = {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !matches!(c.push(Item::Msg(msg![i])), Pushed::Dead(_)) {
                    if i == round * 7 {
                        assert!(c.die(&Reason::die("x")).is_some());
                    }
                    i += 1;
                }
            })
        };
        let mut busy = BusyWait::new(Duration::from_micros(50));
        let mut spin = PreSpin::new(Duration::from_micros(3));
        let (mut next, mut arrivals) = (0u64, VecDeque::new());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match c.take_arrivals(&mut arrivals) {
                Err(reason) => {
                    assert_eq!(reason, Reason::die("x"));
                    break;
                }
                Ok(()) if arrivals.is_empty() => {
                    match c.await_arrival(Some(deadline), &mut busy, &mut spin) {
                        Arrival::Arrived => {}
                        Arrival::Killed(reason) => {
                            assert_eq!(reason, Reason::die("x"));
                            break;
                        }
                        Arrival::TimedOut => panic!("the kill was lost"),
                    }
                }
                Ok(()) => {
                    for m in arrivals.drain(..) {
                        assert_eq!(m.u64_at(0), Some(next), "in order");
                        next += 1;
                    }
                }
            }
        }
        assert!(next <= round * 7 + 1, "nothing sent after the kill arrives");
        sender.join().unwrap();
    }
}

#[test]
fn kill_if_idle_only_when_nothing_waits() {
    let c = cell();
    c.add_monitor(monitor()).ok().expect("alive");
    assert!(matches!(c.push(Item::Msg(msg![1])), Pushed::Schedule));
    assert!(matches!(c.kill_if_idle(), IdleKill::Busy));
    let mut batch = VecDeque::new();
    c.take_batch(&mut batch);
    batch.clear();
    assert!(matches!(c.end_batch(&mut batch, || false), BatchEnd::Idle));
    match c.kill_if_idle() {
        IdleKill::Killed(monitors) => assert_eq!(monitors.len(), 1),
        _ => panic!("an idle port is killed"),
    }
    c.drop_callbacks();
    assert!(matches!(c.kill_if_idle(), IdleKill::AlreadyDead));
    assert!(matches!(c.push(Item::Msg(msg![2])), Pushed::Dead(_)));
    assert!(c.add_monitor(monitor()).is_err());
}

#[test]
fn die_wakes_the_thread_and_hands_out_monitors_once() {
    let c = cell();
    c.init_thread_port();
    let id = c.add_monitor(monitor()).ok().expect("alive");
    c.add_monitor(monitor()).ok().expect("alive");
    assert!(c.remove_monitor(id).is_some());
    assert!(c.remove_monitor(id).is_none());
    c.push(Item::Msg(msg![1]));
    let reason = Reason::die("x");
    assert_eq!(c.die(&reason).map(|m| m.len()), Some(1));
    assert!(c.die(&reason).is_none());
    assert_eq!(c.take_arrivals(&mut VecDeque::new()), Err(reason.clone()));
    let mut busy = BusyWait::new(std::time::Duration::ZERO);
    let mut no_spin = PreSpin::new(std::time::Duration::ZERO);
    assert!(
        matches!(c.await_arrival(None, &mut busy, &mut no_spin), Arrival::Killed(r) if r == reason)
    );
}

#[test]
fn reply_port_takes_replies_directly_and_retires_unless_monitored() {
    let c = cell();
    let (tx, rx) = crossbeam_channel::bounded(2);
    c.init_reply_channel(tx);
    assert!(matches!(c.push(Item::Msg(msg!["r"])), Pushed::Done));
    assert_eq!(rx.try_recv().unwrap().unwrap(), msg!["r"]);
    let id = c.add_monitor(monitor()).ok().expect("alive");
    assert!(!c.retire_reply_port(), "someone monitors it");
    drop(c.remove_monitor(id));
    assert!(c.retire_reply_port());
    assert!(matches!(c.push(Item::Msg(msg!["late"])), Pushed::Dead(_)));
}

#[test]
fn attach_thread_refuses_twice_and_when_dead() {
    let c = cell();
    assert!(c.attach_thread().is_ok());
    assert!(matches!(
        c.attach_thread(),
        Err(AttachError::AlreadyAttached)
    ));
    c.die(&Reason::normal());
    let d = cell();
    d.die(&Reason::normal());
    assert!(matches!(d.attach_thread(), Err(AttachError::Dead)));
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "items wait unscheduled")]
fn check_catches_a_broken_invariant() {
    let c = cell();
    c.lock().inbox.push_back(Item::Kill(Reason::normal()));
}
