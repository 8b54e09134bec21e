//! Prints every headline figure of aemp as `name value unit`, each beside a
//! baseline measured in the same run.
//!
//! ```text
//! cargo run --release --example figures            # full run
//! cargo run --release --example figures -- --quick # under 30 s
//! cargo run --release --example figures -- --only local_send
//! cargo run --release --example figures -- --procs # 64 processes (slow)
//! ```
//!
//! Each figure is the median of several runs. Local sending and ping-pong
//! are also measured beside Erlang/OTP's when `erl` and `erlc` are on
//! `PATH` (see erlang.rs; left out, with a note on stderr, without them).

mod bulk;
mod cpu;
mod dataconn;
mod db;
mod dbsim;
mod erlang;
mod kernel;
mod liveness;
mod logcatch;
mod net;
mod polling;
mod procs;
mod rpc;
mod threads;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes, for the memory figures.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
pub fn rss() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64
}

fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// One measured figure.
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: &'static str) -> Self {
        Figure {
            name: name.to_string(),
            value,
            unit,
        }
    }
}

/// A set of figures measured together (a figure and its baseline).
pub struct Group {
    pub name: &'static str,
    pub measure: Box<dyn Fn() -> Vec<Figure>>,
}

impl Group {
    pub fn new(name: &'static str, measure: impl Fn() -> Vec<Figure> + 'static) -> Self {
        Group {
            name,
            measure: Box::new(measure),
        }
    }
}

/// The median of `runs` measurements.
pub fn median(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..runs.max(1)).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A measurement and its baseline, taken in turns (a, b, a, b, ...) so
/// that a slow spell of the machine hits both: the medians of each and
/// the median of the per-turn ratios a/b.
pub struct Paired {
    pub a: f64,
    pub b: f64,
    pub ratio: f64,
}

pub fn paired(runs: usize, mut a: impl FnMut() -> f64, mut b: impl FnMut() -> f64) -> Paired {
    let v = turns(runs, &mut [&mut a, &mut b]);
    Paired {
        a: mid(&v[0]),
        b: mid(&v[1]),
        ratio: ratio(&v[0], &v[1]),
    }
}

/// Several measurements taken in turns (a, b, c, a, b, c, ...), as in
/// [`paired`]: each one's results, turn by turn.
pub fn turns(runs: usize, fs: &mut [&mut dyn FnMut() -> f64]) -> Vec<Vec<f64>> {
    let mut v = vec![Vec::new(); fs.len()];
    for _ in 0..runs.max(1) {
        for (f, results) in fs.iter_mut().zip(&mut v) {
            results.push(f());
        }
    }
    v
}

/// The median of some results.
pub fn mid(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of the per-turn ratios a/b of results taken in [`turns`].
pub fn ratio(a: &[f64], b: &[f64]) -> f64 {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    mid(&r)
}

/// Starts this program again with `flag` (a peer process) and reads its
/// first line, `READY field...`: the child and the fields.
pub fn start_peer(flag: &str) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(flag)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the peer process");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("peer output");
    let fields = line
        .trim()
        .strip_prefix("READY ")
        .expect("READY")
        .split(' ')
        .map(str::to_string)
        .collect();
    (child, fields)
}

fn print(figures: &[Figure]) {
    for f in figures {
        let value = if f.value.abs() >= 100.0 {
            format!("{:.0}", f.value)
        } else {
            format!("{:.3}", f.value)
        };
        println!("{} {} {}", f.name, value, f.unit);
    }
}

fn main() {
    // Worker processes of the RPC figures are this program re-executed.
    rpc::setup_worker();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The peer process of the network figures (see net.rs).
    if args.first().map(String::as_str) == Some("--net-peer") {
        return net::peer_main();
    }
    // A member of the many-process network (see procs.rs).
    if args.first().map(String::as_str) == Some("--procs-member") {
        return procs::member_main(&args[1]);
    }
    // The peer process of the liveness figures (see liveness.rs).
    if args.first().map(String::as_str) == Some("--live-peer") {
        return liveness::peer_main();
    }
    // The catcher process of the gathered-logs figures (see logcatch.rs).
    if args.first().map(String::as_str) == Some("--logcatch-peer") {
        return logcatch::peer_main();
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only NAME` runs the groups whose name contains NAME.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    // `--procs`: the network of 64 processes (slow; not in the default runs).
    if args.iter().any(|a| a == "--procs") {
        print(&procs::figures(if quick { 20 } else { 100 }));
        return;
    }
    let mut groups = kernel::groups(quick, allocated);
    groups.extend(threads::groups(quick));
    groups.push(Group::new("rpc", move || rpc::figures(quick)));
    groups.extend(net::groups(quick));
    groups.extend(bulk::groups(quick));
    groups.extend(cpu::groups(quick));
    groups.push(Group::new("dataconn", move || dataconn::figures(quick)));
    groups.extend(db::groups(quick));
    groups.push(Group::new("dbsim", move || dbsim::figures(quick)));
    groups.extend(liveness::groups(quick));
    groups.extend(logcatch::groups(quick));
    for g in groups {
        if only.as_deref().is_none_or(|o| g.name.contains(o)) {
            print(&(g.measure)());
        }
    }
}
