//! RAPL energy counters read from a powercap directory (`/sys/class/powercap` on a
//! node; a fixture directory in tests), and their attribution to namespaces by CPU-time
//! share.
//!
//! The directory lists every zone flat: `intel-rapl:N` (top level) and `intel-rapl:N:M`
//! (subzones). Which zones are added, and why:
//!
//! - top-level zones named `package-N`: the CPU packages. Their `core` and `uncore`
//!   subzones are contained in them and never added;
//! - the top-level `psys` zone (platform, on client parts) contains the packages: skipped;
//! - `intel-rapl-mmio:N` repeats a package through MMIO: skipped;
//! - subzones named `dram`, counted as DRAM (off by default): Intel's DRAM domain is
//!   separate from the package domain although the kernel lists it under the package.
//!
//! Counters wrap at `max_energy_range_uj`: a later reading below an earlier one adds
//! `max − before + after`. Two samples must be closer than one wrap period (minutes at
//! full load), which the ledger's five-minute windows do not guarantee: sample every
//! 30 s or less and sum.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EnergyError;
use super::usage::{ComponentJoules, EnergySource, Method};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZoneKind {
    Package,
    Dram,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneReading {
    pub name: String,
    pub kind: ZoneKind,
    pub energy_uj: u64,
    pub max_energy_range_uj: u64,
}

/// The counted zones of one node at one instant, by zone id (`intel-rapl:0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaplSnapshot {
    pub dir: PathBuf,
    pub zones: BTreeMap<String, ZoneReading>,
}

/// Node energy between two snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeJoules {
    pub package: f64,
    /// `None` when no DRAM zone was read.
    pub dram: Option<f64>,
}

fn read_trimmed(path: &Path) -> Result<String, EnergyError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| EnergyError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn read_u64(path: &Path) -> Result<u64, EnergyError> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| EnergyError::Rapl {
        path: path.to_path_buf(),
        message: format!("{text:?} is not a counter value"),
    })
}

/// Read the counted zones of a powercap directory. `with_dram` adds the `dram` subzones.
pub fn read_snapshot(dir: &Path, with_dram: bool) -> Result<RaplSnapshot, EnergyError> {
    let entries = fs::read_dir(dir).map_err(|source| EnergyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut zones = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|source| EnergyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let id = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = id.strip_prefix("intel-rapl:") else {
            continue; // `intel-rapl` (the control type), `intel-rapl-mmio:N`, others
        };
        let depth = rest.split(':').count();
        let zone = entry.path();
        let name = read_trimmed(&zone.join("name"))?;
        let kind = match (depth, name.as_str()) {
            (1, n) if n.starts_with("package-") => ZoneKind::Package,
            (2, "dram") if with_dram => ZoneKind::Dram,
            _ => continue, // core, uncore (inside the package), psys (contains it)
        };
        let reading = ZoneReading {
            name,
            kind,
            energy_uj: read_u64(&zone.join("energy_uj"))?,
            max_energy_range_uj: read_u64(&zone.join("max_energy_range_uj"))?,
        };
        zones.insert(id, reading);
    }
    if !zones.values().any(|z| z.kind == ZoneKind::Package) {
        return Err(EnergyError::Rapl {
            path: dir.to_path_buf(),
            message: "no package zone (intel-rapl:N named package-N)".into(),
        });
    }
    Ok(RaplSnapshot {
        dir: dir.to_path_buf(),
        zones,
    })
}

/// Microjoules from `before` to `after` of one counter, with at most one wrap.
pub fn delta_uj(before: u64, after: u64, max_energy_range_uj: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        max_energy_range_uj.saturating_sub(before) + after
    }
}

/// Node energy between two snapshots of the same directory.
pub fn energy_between(
    before: &RaplSnapshot,
    after: &RaplSnapshot,
) -> Result<NodeJoules, EnergyError> {
    if before.zones.keys().ne(after.zones.keys()) {
        return Err(EnergyError::Rapl {
            path: after.dir.clone(),
            message: "the two snapshots do not have the same zones".into(),
        });
    }
    let mut out = NodeJoules::default();
    for (id, b) in &before.zones {
        let a = &after.zones[id];
        let joules = delta_uj(b.energy_uj, a.energy_uj, a.max_energy_range_uj) as f64 / 1e6;
        match a.kind {
            ZoneKind::Package => out.package += joules,
            ZoneKind::Dram => *out.dram.get_or_insert(0.0) += joules,
        }
    }
    Ok(out)
}

/// Share one node's energy among namespaces by their CPU time on that node. `node_cpu_s`
/// is the node's busy CPU time over the same interval (all processes, system included);
/// the share of what no namespace used stays unattributed.
pub fn attribute(
    node: &str,
    energy: NodeJoules,
    namespace_cpu_s: &BTreeMap<String, f64>,
    node_cpu_s: f64,
) -> EnergySource {
    let used: f64 = namespace_cpu_s.values().sum();
    let total = node_cpu_s.max(used);
    let by_namespace = if total > 0.0 {
        namespace_cpu_s
            .iter()
            .map(|(ns, cpu)| {
                let share = cpu / total;
                let joules = ComponentJoules {
                    cpu: Some(energy.package * share),
                    dram: energy.dram.map(|d| d * share),
                    gpu: None,
                };
                (ns.clone(), joules)
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    EnergySource {
        method: Method::Rapl,
        source: format!("powercap RAPL on {node}, by CPU-time share of {total:.3} core-s"),
        by_namespace,
    }
}

/// Add the attributions of several nodes (a namespace may run on many).
pub fn merge(nodes: &[EnergySource]) -> EnergySource {
    let mut by_namespace: BTreeMap<String, ComponentJoules> = BTreeMap::new();
    let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    };
    for source in nodes {
        for (ns, j) in &source.by_namespace {
            let e = by_namespace.entry(ns.clone()).or_default();
            e.cpu = add(e.cpu, j.cpu);
            e.dram = add(e.dram, j.dram);
        }
    }
    EnergySource {
        method: Method::Rapl,
        source: nodes
            .iter()
            .map(|s| s.source.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        by_namespace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rapl")
            .join(name)
    }

    #[test]
    fn top_level_package_zones_only() {
        let s = read_snapshot(&fixture("t0"), false).unwrap();
        let ids: Vec<&str> = s.zones.keys().map(String::as_str).collect();
        // Not core/uncore (intel-rapl:0:0, :0:1), not psys (intel-rapl:2), not mmio.
        assert_eq!(ids, ["intel-rapl:0", "intel-rapl:1"]);
        let s = read_snapshot(&fixture("t0"), true).unwrap();
        assert_eq!(s.zones["intel-rapl:0:2"].kind, ZoneKind::Dram);
        assert_eq!(s.zones.len(), 3);
    }

    #[test]
    fn two_samples_with_wraparound() {
        let before = read_snapshot(&fixture("t0"), true).unwrap();
        let after = read_snapshot(&fixture("t1"), true).unwrap();
        let e = energy_between(&before, &after).unwrap();
        // package-0: 1 000 000 000 → 1 150 000 000 µJ = 150 J.
        // package-1 wraps: max 262 143 328 850, 262 100 000 000 → 56 671 150:
        // 43 328 850 + 56 671 150 = 100 000 000 µJ = 100 J.
        assert!((e.package - 250.0).abs() < 1e-9, "{e:?}");
        // dram: 500 000 000 → 530 000 000 µJ = 30 J.
        assert_eq!(e.dram, Some(30.0));
        assert_eq!(delta_uj(10, 5, 20), 15);
    }

    #[test]
    fn attribution_by_cpu_share() {
        let e = NodeJoules {
            package: 250.0,
            dram: Some(30.0),
        };
        let cpu = BTreeMap::from([("a".to_string(), 30.0), ("b".to_string(), 10.0)]);
        // The node was busy 50 core-s: a gets 60 %, b 20 %, 20 % stays unattributed.
        let s = attribute("node-1", e, &cpu, 50.0);
        assert_eq!(s.method, Method::Rapl);
        assert!((s.by_namespace["a"].cpu.unwrap() - 150.0).abs() < 1e-9);
        assert!((s.by_namespace["b"].dram.unwrap() - 6.0).abs() < 1e-9);
        let merged = merge(&[s.clone(), s]);
        assert!((merged.by_namespace["a"].cpu.unwrap() - 300.0).abs() < 1e-9);
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let err = read_snapshot(&fixture("absent"), false).unwrap_err();
        assert_eq!(err.category(), "io");
    }
}
