//! Typed worker functions the `rpc_*` tests serve, declared once for the
//! worker and the parent.

use std::time::Duration;

use aemp::rpc::{Events, Function};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The typed error of `T_DIV`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum DivError {
    ByZero,
    Overflow { dividend: i64 },
}

/// A step of a call, as an event: which job sent it, and its number.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Step {
    pub job: u32,
    pub n: u32,
}

/// One job for `T_JOB`: send `steps` events, sleep `ms`, then exit the
/// worker with status 7 when `crash`, else answer with the worker's pid.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Job {
    pub job: u32,
    pub steps: u32,
    pub ms: u64,
    pub crash: bool,
}

/// Integer division; one event before and one after.
pub const T_DIV: Function<(i64, i64), i64, Step, DivError> = Function::json("t_div");
/// The same function, CBOR-encoded.
pub const T_DIV_CBOR: Function<(i64, i64), i64, Step, DivError> = Function::cbor("t_div_cbor");
/// `t_div` declared with other argument types (registered nowhere).
pub const T_DIV_WRONG: Function<String, i64, Step, DivError> = Function::json("t_div");
/// See [`Job`].
pub const T_JOB: Function<Job, u32, Step> = Function::json("t_job");
/// Answers with what a refused `spawn` before `serve_if_worker` said (in a
/// worker started with `RPC_TEST_SPAWN_FIRST` set).
pub const T_SPAWN_FIRST: Function<(), String> = Function::json("t_spawn_first");

/// The error a spawn before `serve_if_worker` got, in this worker.
pub static SPAWN_FIRST: Mutex<Option<String>> = Mutex::new(None);

fn div((a, b): (i64, i64), events: &Events<Step>) -> Result<i64, DivError> {
    events.send(&Step { job: 0, n: 1 }).unwrap();
    let q = match b {
        0 => Err(DivError::ByZero),
        _ => a.checked_div(b).ok_or(DivError::Overflow { dividend: a }),
    };
    events.send(&Step { job: 0, n: 2 }).unwrap();
    q
}

/// Registers the typed worker functions.
pub fn register() {
    T_DIV.register(div);
    T_DIV_CBOR.register(div);
    T_JOB.register(|job: Job, events| {
        for n in 1..=job.steps {
            events
                .send(&Step { job: job.job, n })
                .map_err(|e| e.to_string())?;
        }
        std::thread::sleep(Duration::from_millis(job.ms));
        if job.crash {
            std::process::exit(7);
        }
        Ok(std::process::id())
    });
    T_SPAWN_FIRST.register(|(), _| {
        SPAWN_FIRST
            .lock()
            .clone()
            .ok_or("no spawn was tried".into())
    });
}
