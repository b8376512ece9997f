//! QEMU's NUMA options for a machine of `nodes` memory nodes: CPUs and memory spread evenly,
//! and a SLIT whose distances grow with the gap between node numbers.
//!
//! `-numa node,...` with a memory backend per node makes QEMU's firmware tables carry an SRAT
//! (and `-numa dist` a SLIT), which the kernel reads through the RSDP. Node `i` gets CPUs
//! `i*smp/nodes .. (i+1)*smp/nodes` (none when there are more nodes than CPUs: a node with
//! memory and no CPUs is legal) and `mem/nodes` of memory (the last node the remainder, in
//! whole MiB). The distance from `i` to `j != i` is `11 + 10*|i-j|` (21, 31, ...): every
//! node's neighbours are strictly ordered, so the kernel's fallback order is predictable.

/// The distance QEMU is given from node `from` to node `to`.
pub fn distance(from: u32, to: u32) -> u32 {
    if from == to {
        10
    } else {
        11 + 10 * from.abs_diff(to)
    }
}

/// Megabytes in a QEMU size such as `512M`, `1G` or `6G`.
pub fn size_mib(size: &str) -> Result<u64, String> {
    let (digits, unit) = size.split_at(
        size.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("bad memory size {size}"))?;
    match unit {
        "M" | "m" | "" => Ok(value),
        "G" | "g" => Ok(value * 1024),
        _ => Err(format!("bad memory size unit in {size}")),
    }
}

/// The QEMU arguments for `nodes` nodes over `smp` CPUs and `mem` of memory.
pub fn numa_args(nodes: u32, smp: u32, mem: &str) -> Result<Vec<String>, String> {
    let total = size_mib(mem)?;
    if nodes == 0 || u64::from(nodes) > total {
        return Err(format!("cannot split {mem} over {nodes} nodes"));
    }
    let per_node = total / u64::from(nodes);
    let mut args = Vec::new();
    for node in 0..nodes {
        let mib = if node + 1 == nodes {
            total - per_node * u64::from(nodes - 1)
        } else {
            per_node
        };
        args.push("-object".into());
        args.push(format!("memory-backend-ram,id=numa-mem{node},size={mib}M"));
        let (first, end) = (node * smp / nodes, (node + 1) * smp / nodes);
        let cpus = if end > first {
            format!(",cpus={first}-{}", end - 1)
        } else {
            String::new()
        };
        args.push("-numa".into());
        args.push(format!("node,nodeid={node}{cpus},memdev=numa-mem{node}"));
    }
    for (from, to) in (0..nodes).flat_map(|a| (0..nodes).map(move |b| (a, b))) {
        if from != to {
            args.push("-numa".into());
            args.push(format!(
                "dist,src={from},dst={to},val={}",
                distance(from, to)
            ));
        }
    }
    Ok(args)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(size_mib("512M"), Ok(512));
        assert_eq!(size_mib("6G"), Ok(6144));
        assert!(size_mib("1T").is_err());
        assert!(size_mib("G").is_err());
    }

    #[test]
    fn two_nodes_split_cpus_and_memory_evenly() {
        let args = numa_args(2, 4, "1G").unwrap().join(" ");
        assert!(
            args.contains("memory-backend-ram,id=numa-mem0,size=512M"),
            "{args}"
        );
        assert!(
            args.contains("node,nodeid=0,cpus=0-1,memdev=numa-mem0"),
            "{args}"
        );
        assert!(
            args.contains("node,nodeid=1,cpus=2-3,memdev=numa-mem1"),
            "{args}"
        );
        assert!(args.contains("dist,src=1,dst=0,val=21"), "{args}");
    }

    #[test]
    fn more_nodes_than_cpus_leaves_nodes_without_cpus() {
        let args = numa_args(4, 2, "1G").unwrap();
        let nodes: Vec<&String> = args.iter().filter(|a| a.starts_with("node,")).collect();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes.iter().filter(|a| a.contains("cpus=")).count(), 2);
        assert_eq!(distance(0, 3), 41);
    }

    #[test]
    fn remainders_go_to_the_last_node() {
        let args = numa_args(3, 3, "1G").unwrap().join(" ");
        assert!(args.contains("numa-mem0,size=341M") && args.contains("numa-mem2,size=342M"));
        assert!(numa_args(0, 1, "1G").is_err());
    }
}
