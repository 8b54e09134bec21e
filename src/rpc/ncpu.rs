//! Counting CPUs, for sizing pools.

/// The number of CPU cores, or `default` when it cannot be found out.
///
/// On Linux it counts distinct (`physical id`, `core id`) pairs in
/// `/proc/cpuinfo`, so hyper-threads do not count twice; elsewhere it uses
/// the operating system's count of logical CPUs. Always at least 1.
///
/// ```
/// assert!(aemp::rpc::ncpu(7) >= 1);
/// ```
pub fn ncpu(default: usize) -> usize {
    ncpu_eus(default).0
}

/// `(cores, execution units)`: the number of CPU cores as in [`ncpu`], and
/// the number of logical CPUs (hardware threads). Falls back to `default`
/// for an unknown count; both are at least 1.
///
/// ```
/// let (cores, eus) = aemp::rpc::ncpu_eus(7);
/// assert!(cores >= 1 && eus >= cores);
/// ```
pub fn ncpu_eus(default: usize) -> (usize, usize) {
    let logical = std::thread::available_parallelism().map(|n| n.get()).ok();
    let from_proc = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| parse_cpuinfo(&text));
    let (cores, eus) = match (from_proc, logical) {
        (Some((c, e)), _) => (c, e),
        (None, Some(l)) => (l, l),
        (None, None) => (default, default),
    };
    let cores = cores.max(1);
    (cores, eus.max(cores))
}

/// Counts cores and processors in `/proc/cpuinfo` text.
fn parse_cpuinfo(text: &str) -> Option<(usize, usize)> {
    let mut cores = std::collections::HashSet::new();
    let mut eus = 0;
    let mut physical = "";
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => eus += 1,
            "physical id" => physical = value.trim(),
            "core id" => {
                cores.insert((physical, value.trim()));
            }
            _ => {}
        }
    }
    match (cores.len(), eus) {
        (_, 0) => None,
        (0, e) => Some((e, e)),
        (c, e) => Some((c, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cores_not_hyperthreads() {
        let text = "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 1\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 2\nphysical id\t: 0\ncore id\t\t: 1\n\n\
                    processor\t: 3\nphysical id\t: 1\ncore id\t\t: 0\n";
        assert_eq!(parse_cpuinfo(text), Some((3, 4)));
        assert_eq!(
            parse_cpuinfo("processor : 0\nprocessor : 1\n"),
            Some((2, 2))
        );
        assert_eq!(parse_cpuinfo(""), None);
    }
}
