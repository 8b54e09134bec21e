//! Counting CPUs, for sizing pools.

/// The number of CPUs this process may use, or `default` when it cannot
/// be found out. Always at least 1.
///
/// It is [`std::thread::available_parallelism`]: the logical CPUs the
/// process may run on, within its CPU affinity mask and cgroup CPU quota
/// (a container limited to 2 CPUs on a 64-CPU host answers 2). Unlike
/// Perl's `AnyEvent::Fork::Pool::ncpu`, hyper-threads count as CPUs: the
/// operating system offers no portable way to tell them apart within a
/// quota, and a pool sized by the quota is what the scheduler will run.
///
/// ```
/// assert!(aemp::rpc::ncpu(7) >= 1);
/// ```
pub fn ncpu(default: usize) -> usize {
    ncpu_eus(default).0
}

/// `(cores, execution units)` as the original's `ncpu` pair: both are
/// [`ncpu`]'s count (see there why hyper-threads are not told apart), or
/// `default` when it is unknown; both are at least 1.
///
/// ```
/// let (cores, eus) = aemp::rpc::ncpu_eus(7);
/// assert!(cores >= 1 && eus >= cores);
/// ```
pub fn ncpu_eus(default: usize) -> (usize, usize) {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(default)
        .max(1);
    (n, n)
}
