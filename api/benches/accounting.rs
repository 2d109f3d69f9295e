//! One accounting cycle over 10,000 pods' worth of metrics (release build):
//!
//!     cargo bench -p serre-api --bench accounting
//!
//! The Prometheus answers are generated up front, per pod (the heaviest form: a query
//! not summed by namespace): Kepler CPU package, DRAM and GPU joules, DCGM energy of
//! 1,000 GPUs, and cAdvisor CPU time for 10,000 pods in 1,000 namespaces. A cycle decodes
//! them, sums by namespace, runs `account`, builds the ledger rows and writes them as
//! Parquet. Reports the time per cycle and the peak resident memory (VmHWM).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use common::response;
use serre_api::energy::prometheus::{parse_response, sum_by};
use serre_api::energy::usage::{ResourceUsage, by_tenant};
use serre_api::energy::{
    AccountInputs, EnergySource, Method, Window, account, dcgm, kepler, ledger,
};

const PODS: usize = 10_000;
const PODS_PER_NAMESPACE: usize = 10;

fn kepler_labels(pod: usize, zone: &str) -> String {
    let ns = pod / PODS_PER_NAMESPACE;
    format!(
        r#""instance":"10.0.{}.{}:28282","job":"kepler","node_name":"node-{}","pod_id":"6f1c2d3e-{pod:08}","pod_name":"job-{pod}-7d9f8","pod_namespace":"sbx-{ns:04}","state":"running","zone":"{zone}""#,
        pod % 200,
        pod % 250,
        pod % 200
    )
}

fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let cpu = response((0..PODS).map(|p| (kepler_labels(p, "package"), 1500.0 + p as f64 % 97.0)));
    let dram = response((0..PODS).map(|p| (kepler_labels(p, "dram"), 120.0 + p as f64 % 13.0)));
    let gpu = response((0..PODS).step_by(10).map(|p| {
        (
            kepler_labels(p, "package").replace(r#","zone":"package""#, r#","gpu":"0""#),
            90_000.0,
        )
    }));
    let dcgm_body = response((0..PODS).step_by(10).map(|p| {
        let ns = p / PODS_PER_NAMESPACE;
        (
            format!(
                r#""DCGM_FI_DRIVER_VERSION":"550.54.15","Hostname":"node-{}","UUID":"GPU-{p:08}","container":"main","device":"nvidia{}","gpu":"{}","modelName":"NVIDIA H100 80GB HBM3","namespace":"sbx-{ns:04}","pci_bus_id":"00000000:17:00.0","pod":"job-{p}-7d9f8""#,
                p % 200,
                p % 8,
                p % 8
            ),
            85_000_000.0,
        )
    }));
    let cadvisor = response((0..PODS).map(|p| {
        let ns = p / PODS_PER_NAMESPACE;
        (
            format!(
                r#""container":"main","cpu":"total","image":"registry.local/job:1","instance":"node-{}","job":"kubelet","namespace":"sbx-{ns:04}","pod":"job-{p}-7d9f8""#,
                p % 200
            ),
            240.0,
        )
    }));
    let input_mb =
        (cpu.len() + dram.len() + gpu.len() + dcgm_body.len() + cadvisor.len()) as f64 / 1e6;
    let tenants: BTreeMap<String, String> = (0..PODS / PODS_PER_NAMESPACE)
        .map(|ns| (format!("sbx-{ns:04}"), format!("tenant-{}", ns % 30)))
        .collect();
    let window = Window::new(
        Utc.timestamp_opt(1_772_445_600, 0).unwrap(),
        Utc.timestamp_opt(1_772_445_900, 0).unwrap(),
    )
    .unwrap();
    let hwm_before = vm_hwm_kb();

    let mut times = Vec::new();
    let mut rows_out = 0;
    let mut parquet_bytes = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let kepler_energy = EnergySource {
            method: Method::Kepler,
            source: "bench".into(),
            by_namespace: kepler::from_samples(
                &parse_response(200, &cpu).unwrap(),
                &parse_response(200, &dram).unwrap(),
                &parse_response(200, &gpu).unwrap(),
                "pod_namespace",
            ),
        };
        let dcgm_energy = EnergySource {
            method: Method::Dcgm,
            source: "bench".into(),
            by_namespace: dcgm::from_samples(
                &parse_response(200, &dcgm_body).unwrap(),
                "namespace",
            ),
        };
        let resources = sum_by(&parse_response(200, &cadvisor).unwrap(), "namespace")
            .into_iter()
            .map(|(ns, used)| {
                let r = ResourceUsage {
                    cpu_used_core_s: used,
                    cpu_requested_core_s: 2400.0,
                    memory_requested_gb_s: 4.0 * 300.0,
                    ..ResourceUsage::default()
                };
                (ns, r)
            })
            .collect();
        let inputs = AccountInputs {
            resources,
            energy: vec![kepler_energy, dcgm_energy],
            tenants: tenants.clone(),
            ..AccountInputs::default()
        };
        let usages = account(window, &inputs).unwrap();
        let rolled = by_tenant(&usages);
        let rows = ledger::rows(&usages);
        let mut parquet = Vec::new();
        ledger::write_parquet(&rows, &mut parquet).unwrap();
        times.push(start.elapsed().as_secs_f64());
        assert_eq!(usages.len(), PODS / PODS_PER_NAMESPACE);
        assert_eq!(rolled.len(), 30);
        rows_out = rows.len();
        parquet_bytes = parquet.len();
    }
    times.sort_by(f64::total_cmp);
    let hwm = vm_hwm_kb();
    println!(
        "accounting cycle, {PODS} pods in {} namespaces ({input_mb:.1} MB of Prometheus JSON, {rows_out} ledger rows, {:.0} kB Parquet):",
        PODS / PODS_PER_NAMESPACE,
        parquet_bytes as f64 / 1e3
    );
    println!(
        "  time per cycle: min {:.1} ms, median {:.1} ms, max {:.1} ms (5 cycles; target < 1 s)",
        times[0] * 1e3,
        times[2] * 1e3,
        times[4] * 1e3
    );
    println!(
        "  peak RSS (VmHWM): {:.1} MB (inputs generated: {:.1} MB; target < 100 MB)",
        hwm as f64 / 1024.0,
        hwm_before as f64 / 1024.0
    );
    assert!(times[2] < 1.0, "median cycle above 1 s");
    assert!(hwm < 100 * 1024, "peak RSS above 100 MB");
}
