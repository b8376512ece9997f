//! NUMA discovery: which memory and which CPUs belong to which node, from the ACPI SRAT (and
//! the distances between nodes from the SLIT), handed to `mm` as a [`NodeLayout`].
//!
//! [`init`] runs once on the BSP, after `mm` manages the memory map and the heap exists (the
//! allocator moves frames it already manages to their home nodes, see
//! `mm::FrameAllocator::set_layout`) and before the per-CPU caches are created, since each
//! cache belongs to its CPU's node.
//!
//! Outcomes, each printed on serial as one `NUMA ...` record line for tests and scripts:
//! - `NUMA nodes=N source=srat slit=yes|no`: the SRAT described every CPU and every node with
//!   memory; one `NODE node=<n> domain=<d> cpus=<list> mib=<MiB> distances=<d0,d1,..>` line
//!   per node follows once the frames are split (`print_nodes`).
//! - `NUMA nodes=1 source=none reason="..."`: no RSDP, no SRAT: exactly the single-node
//!   allocator of a machine without NUMA, silently.
//! - `NUMA nodes=1 source=fallback reason="..."`: the tables were there but wrong (a table
//!   that fails the `acpi` crate's checks, a malformed entry, overlapping ranges, a CPU with no
//!   node, a node with no memory); the reason names what, and the kernel goes on with one
//!   node; also when `mm` refuses the table (more spans than a node's table holds). Nothing
//!   here panics on table contents or loops on them.
//!
//! A SLIT that cannot be read (too short for its locality count) is reported on its own line
//! and ignored (distances default to 10 local, 20 remote); one that does not cover every
//! domain the SRAT names is a fallback, like the SRAT errors.

mod srat;
mod tables;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use mm::{Distances, NodeLayout};
use spin::Once;

use crate::boot::BootInfo;

/// What [`init`] found: the layout `mm` uses and each CPU's node.
pub struct Topology {
    /// The node table given to `mm`.
    pub layout: NodeLayout,
    /// `cpu_nodes[cpu]`: the node of CPU `cpu` (kernel CPU numbering, BSP first).
    pub cpu_nodes: Vec<u8>,
}

static TOPOLOGY: Once<Topology> = Once::new();

/// Discovers the node layout, hands it to `mm` and prints the outcome. Once, on the BSP.
pub fn init(boot: &BootInfo) -> &'static Topology {
    TOPOLOGY.call_once(|| {
        let topology = discover(boot);
        let _cpu = crate::memory::pin();
        match crate::memory::FRAMES.set_layout(&topology.layout) {
            Ok(()) => topology,
            // `mm` checks before it moves any frame: refused, it still has one node.
            Err(e) => {
                arch::println!(
                    "NUMA nodes=1 source=fallback reason=\"mm refused the layout: {e:?}\""
                );
                single_node(boot.lapic_ids.len())
            }
        }
    })
}

/// The layout from [`init`]. Panics before it.
pub fn topology() -> &'static Topology {
    TOPOLOGY
        .get()
        .expect("numa::init runs before the caches are created")
}

/// One node, every CPU on it.
fn single_node(cpus: usize) -> Topology {
    Topology {
        layout: NodeLayout::single(),
        cpu_nodes: vec![0; cpus],
    }
}

fn discover(boot: &BootInfo) -> Topology {
    let cpus = boot.lapic_ids.len();
    match read_tables(boot) {
        Ok(Some((layout, cpu_nodes, has_slit))) => {
            let slit = if has_slit { "yes" } else { "no" };
            arch::println!("NUMA nodes={} source=srat slit={slit}", layout.node_count());
            Topology { layout, cpu_nodes }
        }
        Ok(None) => single_node(cpus),
        Err(reason) => {
            arch::println!("NUMA nodes=1 source=fallback reason=\"{reason}\"");
            arch::println!("numa: the SRAT is unusable ({reason}); using one node");
            single_node(cpus)
        }
    }
}

/// The layout from the SRAT and SLIT; `Ok(None)` (after printing why) when there is no SRAT.
fn read_tables(boot: &BootInfo) -> Result<Option<(NodeLayout, Vec<u8>, bool)>, String> {
    let Some(rsdp) = boot.rsdp_phys else {
        arch::println!("NUMA nodes=1 source=none reason=\"no RSDP\"");
        return Ok(None);
    };
    let acpi = tables::open(rsdp).map_err(|e| format!("ACPI tables unreadable: {e:?}"))?;
    let Some(srat) =
        tables::table_bytes::<{ tables::SRAT }>(&acpi).map_err(|e| format!("SRAT: {e:?}"))?
    else {
        arch::println!("NUMA nodes=1 source=none reason=\"no SRAT\"");
        return Ok(None);
    };
    let affinity = srat::parse_srat(srat)?;
    let slit = read_slit(&acpi);
    let distances = slit.map(|(domains, matrix)| Distances { domains, matrix });
    let mut cpu_nodes = vec![0u8; boot.lapic_ids.len()];
    let layout = NodeLayout::from_affinity(
        &affinity.memory,
        &affinity.cpus,
        distances,
        &boot.lapic_ids,
        &mut cpu_nodes,
    )
    .map_err(|e| format!("{e}"))?;
    Ok(Some((layout, cpu_nodes, slit.is_some())))
}

/// The SLIT's matrix, or `None` (printing why) if absent or unreadable.
fn read_slit(acpi: &acpi::AcpiTables<tables::Mapper>) -> Option<(usize, &'static [u8])> {
    let parsed = match tables::table_bytes::<{ tables::SLIT }>(acpi) {
        Ok(Some(table)) => srat::parse_slit(table),
        Ok(None) => return None,
        Err(e) => Err(format!("{e:?}")),
    };
    parsed
        .inspect_err(|e| arch::println!("numa: SLIT ignored ({e}); distances 10 local, 20 remote"))
        .ok()
}

/// Prints one `NODE` line per node: its domain, CPUs, memory and distances.
pub fn print_nodes() {
    let topology = topology();
    let layout = &topology.layout;
    for node in 0..layout.node_count() {
        let cpus: Vec<String> = (topology.cpu_nodes.iter().enumerate())
            .filter(|&(_, &n)| usize::from(n) == node)
            .map(|(cpu, _)| format!("{cpu}"))
            .collect();
        let distances: Vec<String> = (0..layout.node_count())
            .map(|to| format!("{}", layout.distance(node, to)))
            .collect();
        let stats = crate::memory::FRAMES.node_stats(node);
        arch::println!(
            "NODE node={node} domain={} cpus={} mib={} distances={}",
            layout.domain(node),
            if cpus.is_empty() {
                String::from("none")
            } else {
                cpus.join(",")
            },
            (stats.managed * mm::FRAME_SIZE) >> 20,
            distances.join(",")
        );
    }
}
