//! Pools of workers (acceptance items 143–148). Filled in by the next commit.
mod rpc_support;

fn main() {
    rpc_support::register_workers();
    aemp::rpc::serve_if_worker();
    rpc_support::run(&[]);
}
