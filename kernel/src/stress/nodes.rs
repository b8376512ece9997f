//! The per-node part of the stress report: one `NODESTAT` line per node after every phase run
//! (only the figures that differ between nodes: where allocations were served, each node's
//! own global and depot lock, the magazine size its depot chose), and the `mag_sizes` key of
//! the `STAT` line.
//!
//! `NODESTAT` keys, in order: `phase mode node domain cpus local_allocs remote_allocs
//! remote_frees local_rate global_acq global_contended global_wait_cycles depot_acq
//! depot_contended depot_wait_cycles mag_size mag_pinned mag_grows mag_shrinks free managed`.
//! `local_allocs`/`remote_allocs` count single frames allocated by the node's CPUs from their
//! own node / from others; `remote_frees` frames of other nodes its CPUs freed (sent home).
#![deny(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use super::PhaseRun;
use super::report::mode_name;

/// Each node's magazine size after `run`, comma-separated (`32,64`).
pub fn magazine_sizes(run: &PhaseRun) -> String {
    let sizes: Vec<String> = run
        .nodes
        .iter()
        .map(|n| alloc::format!("{}", n.magazine_size))
        .collect();
    sizes.join(",")
}

/// Prints the `NODESTAT` lines of `run`.
pub fn print_table(run: &PhaseRun) {
    for (node, n) in run.nodes.iter().enumerate() {
        let allocs = n.local_allocs + n.remote_allocs;
        let local_rate = n.local_allocs as f64 / allocs.max(1) as f64;
        let (g, d) = (&n.global_lock, &n.depot_lock);
        arch::println!(
            "NODESTAT phase={} mode={} node={node} domain={} cpus={} local_allocs={} \
             remote_allocs={} remote_frees={} local_rate={local_rate:.4} global_acq={} \
             global_contended={} global_wait_cycles={} depot_acq={} depot_contended={} \
             depot_wait_cycles={} mag_size={} mag_pinned={} mag_grows={} mag_shrinks={} \
             free={} managed={}",
            run.phase.name(),
            mode_name(run.mode),
            n.domain,
            n.cpus,
            n.local_allocs,
            n.remote_allocs,
            n.remote_frees,
            g.acquisitions,
            g.contended,
            g.wait_cycles,
            d.acquisitions,
            d.contended,
            d.wait_cycles,
            n.magazine_size,
            u8::from(n.magazine_pinned),
            n.magazine_grows,
            n.magazine_shrinks,
            n.free,
            n.managed,
        );
    }
}
