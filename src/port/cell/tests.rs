//! The cell's transitions, one at a time (the invariants are checked by
//! every lock release in these debug builds).

use super::*;
use crate::msg;
use crate::port::DefaultHandler;

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
