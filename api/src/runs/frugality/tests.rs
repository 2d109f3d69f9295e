use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::*;
use crate::energy::{AccountInputs, ResourceUsage, Window, account, ledger};
use crate::runs::figures::summarise;

/// A run's ledger rows through the real accounting: `used` core-seconds of CPU time
/// measured by cAdvisor, `requested` core-seconds declared, `gb_s` GB-seconds of memory,
/// over one window of `seconds`; no energy meter, so energy comes from the power model.
fn run_figures(used: f64, requested: f64, gb_s: f64, seconds: i64) -> RunFigures {
    let start = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let window = Window::new(start, start + chrono::Duration::seconds(seconds)).unwrap();
    let inputs = AccountInputs {
        resources: BTreeMap::from([(
            "ns".to_owned(),
            ResourceUsage {
                cpu_requested_core_s: requested,
                cpu_used_core_s: used,
                memory_requested_gb_s: gb_s,
                memory_used_gb_s: gb_s / 2.0,
                source: "test".into(),
                ..ResourceUsage::default()
            },
        )]),
        tenants: BTreeMap::from([("ns".to_owned(), "t".to_owned())]),
        ..AccountInputs::default()
    };
    let mut rows = ledger::rows(&account(window, &inputs).unwrap());
    for r in &mut rows {
        r.run = "run-1".into();
    }
    summarise(&rows, seconds as f64, Some(("inference", 1000)))
}

fn inputs() -> ReportInputs {
    ReportInputs {
        phase: "inference".into(),
        cpu: "1".into(),
        memory: "1Gi".into(),
        functional_unit: Some(("inference".into(), 1000)),
        data_read: Some((10_000_000, 1)),
        outputs: Ok(2048),
        ..ReportInputs::default()
    }
}

fn run_phase(f: &Frugality) -> &PhaseFigures {
    f.phases
        .iter()
        .find(|p| p.observed)
        .and_then(|p| p.figures.as_ref())
        .expect("the run's phase")
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-12 * b.abs().max(1.0))
}

#[test]
fn a_run_of_known_cpu_time_yields_the_documented_models_energy_within_its_range() {
    // 20 core-s of CPU time measured in a run that held 1 core for 40 s: under the
    // documented model (6.25 W per core, idle 25 %) the CPU draws
    // 6.25 × (0.25 × 40 + 0.75 × 20) = 156.25 J; DRAM 0.392 W/GB × 80 GB-s charged =
    // 31.36 J. Meter: × PUE 1.5; emissions: × 56 gCO2e/kWh.
    let f = build(&run_figures(20.0, 40.0, 80.0, 40), &inputs());
    let x = run_phase(&f);
    let cpu_kwh = 156.25 / 3.6e6;
    let dram_kwh = 31.36 / 3.6e6;
    assert!(close(x.energy.cpu.value, cpu_kwh), "{:?}", x.energy.cpu);
    assert!(close(x.energy.dram.value, dram_kwh), "{:?}", x.energy.dram);
    assert_eq!(x.energy.cpu.method, MethodClass::Modelled);
    assert_eq!(x.energy.cpu.method_detail, "modelled");
    // The stated range holds the model's figure and says why it is that wide.
    assert!(x.energy.cpu.covers(cpu_kwh));
    assert!(close(x.energy.cpu.low, cpu_kwh * 0.45));
    assert!(close(x.energy.cpu.high, cpu_kwh * 2.2));
    assert!(x.energy.cpu.uncertainty.contains("reference server"));
    let it = cpu_kwh + dram_kwh;
    assert!(close(x.energy.it.value, it));
    assert!(close(x.energy.meter.value, it * 1.5));
    assert!(x.energy.meter.covers(it * 1.5));
    assert!(close(x.emissions.operational.value, it * 1.5 * 56.0));
    assert_eq!(x.emissions.factor.year, 2024);
    assert_eq!(x.emissions.factor.method, MethodClass::Declared);
    // The ledger's own meter figure agrees with the report's.
    let f_ledger = run_figures(20.0, 40.0, 80.0, 40);
    assert!(close(x.energy.meter.value, f_ledger.kwh));
    // Compute: measured CPU time within ±10 %, requests declared and exact.
    let used = &x.compute.cpu_core_hours_used;
    assert!(close(used.value, 20.0 / 3600.0));
    assert_eq!(used.method, MethodClass::Measured);
    assert!(close(used.low, 18.0 / 3600.0) && close(used.high, 22.0 / 3600.0));
    let requested = &x.compute.cpu_core_hours_requested;
    assert_eq!(requested.method, MethodClass::Declared);
    assert!(close(requested.low, 40.0 / 3600.0) && close(requested.high, 40.0 / 3600.0));
    assert!(close(
        x.compute.memory_gb_hours_charged.value,
        80.0 / 3600.0
    ));
    // What Serre does not know is unknown, not zero.
    assert_eq!(x.storage_gb_hours.value, None);
    assert_eq!(x.storage_gb_hours.method, MethodClass::Unknown);
    assert_eq!(x.data_read_bytes.value, Some(10_000_000.0));
    assert_eq!(x.output_bytes.value, Some(2048.0));
    assert_eq!(x.hardware.node, None);
}

#[test]
fn phases_the_run_did_not_measure_are_unknown() {
    let f = build(&run_figures(20.0, 40.0, 80.0, 40), &inputs());
    let phases: Vec<(&str, bool)> = f
        .phases
        .iter()
        .map(|p| (p.phase.as_str(), p.observed))
        .collect();
    assert_eq!(
        phases,
        [
            ("data-preparation", false),
            ("training", false),
            ("fine-tuning", false),
            ("inference", true),
            ("evaluation", false)
        ]
    );
    for p in f.phases.iter().filter(|p| !p.observed) {
        assert!(p.figures.is_none() && p.per_unit.is_none());
        assert!(p.note.starts_with("unknown"), "{}", p.note);
    }
}

#[test]
fn per_unit_figures_and_sci_show_their_inputs() {
    let figures = run_figures(20.0, 40.0, 80.0, 40);
    let f = build(&figures, &inputs());
    let it = (156.25 + 31.36) / 3.6e6;
    let meter = it * 1.5;
    let unit = f.phases[3].per_unit.as_ref().expect("per unit");
    assert_eq!(
        (unit.functional_unit.as_str(), unit.count),
        ("inference", 1000)
    );
    assert!(close(unit.kwh.value, meter / 1000.0));
    assert!(unit.kwh.covers(meter / 1000.0));
    assert!(close(unit.gco2e.value, meter * 56.0 / 1000.0));
    // SCI = (E × I + M) / R with M unknown (not configured): E × I / R.
    let sci = &f.sci;
    assert!(close(sci.energy.value, meter));
    assert_eq!(sci.intensity.g_per_kwh, 56.0);
    assert_eq!(sci.embodied.value, None);
    assert_eq!(
        (sci.functional_unit.as_str(), sci.functional_units),
        ("inference", 1000)
    );
    assert_eq!(sci.functional_unit_method, MethodClass::Declared);
    assert!(close(sci.value.value, meter * 56.0 / 1000.0));
    // The report's SCI is the figures' own (`sciPerUnit`).
    assert!(close(sci.value.value, figures.sci_per_unit.unwrap()));
    // Without a functional unit, R is the run.
    let mut no_unit = inputs();
    no_unit.functional_unit = None;
    let f = build(&figures, &no_unit);
    assert_eq!(
        (f.sci.functional_unit.as_str(), f.sci.functional_units),
        ("run", 1)
    );
    assert!(f.phases[3].per_unit.is_none());
}

#[test]
fn declared_mode_ranges_start_at_zero() {
    // No metrics source: usage is the run's requests (modelled), an upper bound.
    let mut f = run_figures(40.0, 40.0, 80.0, 40);
    for x in f.figures.values_mut() {
        x.method = "modelled".into();
    }
    let mut i = inputs();
    i.declared_mode = true;
    let r = build(&f, &i);
    let x = run_phase(&r);
    assert_eq!(x.compute.cpu_core_hours_used.low, Some(0.0));
    assert!(close(x.compute.cpu_core_hours_used.high, 40.0 / 3600.0));
    assert_eq!(x.energy.cpu.low, Some(0.0));
    let cpu = 6.25 * 40.0 / 3.6e6;
    assert!(close(x.energy.cpu.high, cpu * 2.0));
    assert!(r.phases[3].note.contains("no metrics source"));
}

#[test]
fn comparisons_need_the_same_phase_unit_and_method_class() {
    use MethodClass::*;
    let this = ("inference", Some("inference"), Modelled);
    assert!(comparable(this, ("inference", Some("inference"), Modelled)).is_ok());
    let e = comparable(this, ("inference", Some("inference"), Measured)).unwrap_err();
    assert!(e.contains("method class"), "{e}");
    let e = comparable(this, ("inference", Some("document"), Modelled)).unwrap_err();
    assert!(e.contains("functional unit"), "{e}");
    let e = comparable(this, ("inference", None, Modelled)).unwrap_err();
    assert!(e.contains("no functional unit"), "{e}");
    let e = comparable(this, ("training", Some("inference"), Modelled)).unwrap_err();
    assert!(e.contains("phase"), "{e}");
}

#[test]
fn the_checklist_is_declared_and_validated() {
    let answers: PracticeAnswers = serde_json::from_value(serde_json::json!({
        "answers": [{"id": "model.smallest", "answer": "yes", "comment": "7B vs 70B"},
                    {"id": "data.minimise", "answer": "partly"}]
    }))
    .unwrap();
    assert!(validate_answers(&answers).is_empty());
    let c = checklist(Some(&answers), Some("acme".into()), None);
    assert_eq!(c.method, MethodClass::Declared);
    assert_eq!(c.items.len(), PRACTICES.len());
    let smallest = c.items.iter().find(|i| i.id == "model.smallest").unwrap();
    assert_eq!(smallest.answer, Some(Answer::Yes));
    assert_eq!(smallest.comment.as_deref(), Some("7B vs 70B"));
    assert!(c.items.iter().filter(|i| i.answer.is_none()).count() == PRACTICES.len() - 2);
    let bad: PracticeAnswers = serde_json::from_value(serde_json::json!({
        "answers": [{"id": "nope", "answer": "yes"},
                    {"id": "model.reuse", "answer": "no"},
                    {"id": "model.reuse", "answer": "yes"}]
    }))
    .unwrap();
    let fields: Vec<String> = validate_answers(&bad)
        .into_iter()
        .map(|i| i.field)
        .collect();
    assert_eq!(fields, ["answers[0].id", "answers[2].id"]);
    assert!(
        serde_json::from_value::<PracticeAnswers>(
            serde_json::json!({"answers": [{"id": "model.reuse", "answer": "maybe"}]})
        )
        .is_err()
    );
}

#[test]
fn the_csv_view_holds_the_same_figures_and_keeps_the_checklist_apart() {
    let f = build(&run_figures(20.0, 40.0, 80.0, 40), &inputs());
    let c = checklist(None, None, None);
    let bytes = csv(&f, &c).unwrap();
    let mut r = ::csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), CSV_HEADER);
    let rows: Vec<::csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let find = |section: &str, q: &str| {
        rows.iter()
            .find(|x| &x[0] == section && &x[2] == q)
            .unwrap_or_else(|| panic!("{section} {q}"))
            .clone()
    };
    let cpu = find("figure", "energy_cpu_kwh");
    let x = run_phase(&f);
    assert_eq!(cpu[3].parse::<f64>().ok(), x.energy.cpu.value);
    assert_eq!(cpu[5].parse::<f64>().ok(), x.energy.cpu.low);
    assert_eq!(cpu[6].parse::<f64>().ok(), x.energy.cpu.high);
    assert_eq!((&cpu[7], &cpu[8]), ("modelled", "modelled"));
    assert_eq!(&find("figure", "storage_gb_hours")[7], "unknown");
    assert_eq!(&find("sci", "r")[3], "1000");
    assert_eq!(&find("sci", "i_gco2e_per_kwh")[3], "56");
    // Unknown phases are a row each; the checklist's rows are declared, in their section.
    assert!(rows.iter().any(|x| &x[0] == "phase" && &x[1] == "training"));
    let practices: Vec<_> = rows
        .iter()
        .filter(|x| &x[0] == "declared_practices")
        .collect();
    assert_eq!(practices.len(), PRACTICES.len());
    assert!(practices.iter().all(|x| &x[7] == "declared"));
    assert!(
        rows.iter()
            .filter(|x| &x[0] != "declared_practices")
            .all(|x| &x[7] != "declared" || &x[8] != "checklist")
    );
}
