//! NUMA boot tests (issue 8): the kernel reads QEMU's SRAT and SLIT through the RSDP, puts
//! every CPU and every frame on its node, and falls back to one node, saying why, when the
//! tables are missing or malformed (the loader's `loader.corrupt=srat-*` and
//! `loader.hide=srat` hooks rewrite QEMU's tables before the kernel starts).

use std::collections::BTreeMap;
use std::time::Duration;

use tests::{Boot, Outcome, boot};

/// Wall-clock limit per boot: TCG on two host cores, tests running in parallel.
const TIMEOUT: Duration = Duration::from_secs(240);

/// Boots `cmdline` on `smp` CPUs over `nodes` NUMA nodes (0: no NUMA tables).
fn run(smp: u32, nodes: u32, mem: &str, cmdline: &str) -> Outcome {
    boot(&Boot {
        smp,
        mem,
        cmdline,
        numa_nodes: nodes,
        timeout: TIMEOUT,
        ..Default::default()
    })
}

/// The single `NUMA ...` record.
fn numa_record(out: &Outcome) -> BTreeMap<String, String> {
    let records = out.records("NUMA ");
    assert_eq!(records.len(), 1, "{}", out.serial);
    records.into_iter().next().unwrap()
}

/// The `NODE ...` records, in node order.
fn node_records(out: &Outcome) -> Vec<BTreeMap<String, String>> {
    let nodes = out.records("NODE ");
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node["node"], i.to_string(), "{}", out.serial);
    }
    nodes
}

/// Asserts that the kernel used one node for the reason `reason` (a `source=` value and a
/// part of the reason text) and still passed.
fn assert_one_node(out: &Outcome, source: &str, reason: &str) {
    out.assert_passed();
    let numa = numa_record(out);
    assert_eq!(numa["nodes"], "1", "{}", out.serial);
    assert_eq!(numa["source"], source, "{}", out.serial);
    let line = out.lines_with("NUMA ").next().unwrap();
    assert!(line.contains(reason), "{line}");
    let nodes = node_records(out);
    assert_eq!(nodes.len(), 1, "{}", out.serial);
    assert_eq!(nodes[0]["distances"], "10");
}

#[test]
fn two_nodes_get_their_cpus_memory_and_distances() {
    let out = run(4, 2, "1G", "test=boot");
    out.assert_passed();
    let numa = numa_record(&out);
    assert_eq!(
        (numa["nodes"].as_str(), numa["source"].as_str()),
        ("2", "srat")
    );
    assert_eq!(numa["slit"], "yes");
    let nodes = node_records(&out);
    assert_eq!(nodes.len(), 2, "{}", out.serial);
    assert_eq!(nodes[0]["cpus"], "0,1");
    assert_eq!(nodes[1]["cpus"], "2,3");
    assert_eq!(nodes[0]["distances"], "10,21");
    assert_eq!(nodes[1]["distances"], "21,10");
    for node in &nodes {
        let mib: u64 = node["mib"].parse().unwrap();
        assert!(
            (400..=512).contains(&mib),
            "each node has about half of 1G: {node:?}"
        );
    }
}

#[test]
fn four_nodes_span_memory_above_4g() {
    let out = run(8, 4, "6G", "test=boot");
    out.assert_passed();
    assert_eq!(numa_record(&out)["nodes"], "4");
    let nodes = node_records(&out);
    assert_eq!(nodes.len(), 4, "{}", out.serial);
    let cpus: Vec<&str> = nodes.iter().map(|n| n["cpus"].as_str()).collect();
    assert_eq!(cpus, ["0,1", "2,3", "4,5", "6,7"]);
    assert_eq!(nodes[0]["distances"], "10,21,31,41");
    assert_eq!(nodes[3]["distances"], "41,31,21,10");
    let total: u64 = nodes.iter().map(|n| n["mib"].parse::<u64>().unwrap()).sum();
    assert!(total > 5 * 1024, "most of 6G is managed: {total} MiB");
}

#[test]
fn a_node_without_cpus_keeps_its_memory() {
    let out = run(2, 4, "1G", "test=boot");
    out.assert_passed();
    let nodes = node_records(&out);
    assert_eq!(nodes.len(), 4, "{}", out.serial);
    let without = nodes.iter().filter(|n| n["cpus"] == "none").count();
    assert_eq!(without, 2, "{}", out.serial);
    assert!(nodes.iter().all(|n| n["mib"].parse::<u64>().unwrap() > 200));
}

#[test]
fn malformed_srat_falls_back_to_one_node_naming_the_fault() {
    let cases = [
        ("srat-overlap", "overlap"),
        ("srat-cpu", "CPU hw id 3 has no node"),
        ("srat-memless", "domain 1 has CPUs but no memory"),
    ];
    for (hook, reason) in cases {
        let out = run(4, 2, "1G", &format!("test=boot loader.corrupt={hook}"));
        assert_one_node(&out, "fallback", reason);
        out.assert_contains("numa: the SRAT is unusable (");
    }
}

#[test]
fn no_srat_gives_one_node() {
    assert_one_node(&run(2, 0, "512M", "test=boot"), "none", "no SRAT");
    let hidden = run(4, 2, "1G", "test=boot loader.hide=srat");
    assert_one_node(&hidden, "none", "no SRAT");
}

#[test]
fn the_magazine_size_can_be_pinned_and_is_checked() {
    let out = run(2, 2, "1G", "test=boot mag=64");
    out.assert_passed();
    out.assert_contains("frames: magazine size pinned at 64 (mag=)");
    let bad = run(2, 0, "512M", "test=boot mag=3");
    bad.assert_status(tests::Status::Failed);
    bad.assert_contains("RESULT FAIL mag=3: magazine size 3 is outside 8..=256");
}
