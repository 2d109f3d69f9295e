//! The frugality report of a run: JSON for programs (its schema is in the OpenAPI
//! document), and views of the same data: one HTML page with inline SVG charts (energy
//! per window split by component; comparison with the comparable previous runs of the
//! same solution), no script, no external asset; and CSV ([`super::frugality::csv`]).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::figures::RunFigures;
use super::frugality::{self, Frugality, MethodClass, PracticeChecklist, ReportFigure};
use crate::energy::CarbonParams;

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub run: String,
    pub sandbox: String,
    pub tenant: String,
    pub solution: Option<String>,
    pub kind: String,
    pub phase: String,
    pub requested_by: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_reason: Option<String>,
    /// The quality the requester reported: `(metric, value)`.
    pub quality: Option<(String, f64)>,
    /// Requests of the workload container: cpu, memory, GPUs.
    pub requested: Requested,
    /// False while the run goes on or the ledger has not covered its end yet.
    pub final_figures: bool,
    /// Per life-cycle phase and per functional unit, each figure with its method class,
    /// source and uncertainty range; SCI with its inputs.
    #[serde(flatten)]
    pub frugality: Frugality,
    /// The ledger's figures summed over the run (quantity → figure), as recorded.
    pub figures: RunFigures,
    pub carbon: CarbonNote,
    /// Previous closed runs of the same solution, oldest first, each saying whether it
    /// is comparable with this one (same phase, functional unit and method class).
    pub comparison: Vec<Comparison>,
    /// What the methods behind these figures can and cannot tell.
    pub caveats: Vec<String>,
    /// The frugal-AI good-practice checklist as the run's requester answered it:
    /// declared, kept apart from the figures Serre measured or modelled.
    pub practices: PracticeChecklist,
    pub generated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requested {
    pub cpu: String,
    pub memory: String,
    pub gpus: u32,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CarbonNote {
    pub pue: f64,
    pub pue_source: String,
    pub g_per_kwh: f64,
    pub intensity_source: String,
    pub intensity_year: u16,
    pub intensity_scope: String,
}

impl CarbonNote {
    pub fn from_params(c: &CarbonParams) -> Self {
        Self {
            pue: c.pue,
            pue_source: c.pue_source.clone(),
            g_per_kwh: c.intensity.g_per_kwh,
            intensity_source: c.intensity.source.clone(),
            intensity_year: c.intensity.year,
            intensity_scope: c.intensity.scope.clone(),
        }
    }
}

/// A previous closed run of the same solution that the report's reader may read
/// (`run.read`): the handler leaves out the others (another tenant's, another vendor's).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub run: String,
    pub kind: String,
    pub finished_at: Option<String>,
    pub duration_seconds: f64,
    pub kwh: f64,
    pub gco2e: f64,
    pub kwh_per_unit: Option<f64>,
    pub sci_per_unit: Option<f64>,
    pub energy_method: String,
    /// The class of `energyMethod`.
    pub method_class: MethodClass,
    pub functional_unit: Option<String>,
    /// Same phase, same functional unit, same method class as this run.
    pub comparable: bool,
    /// Why not, when not comparable.
    pub not_comparable: Option<String>,
}

/// Caveats for the methods present in the figures, most important first.
pub fn caveats(f: &RunFigures, declared: bool) -> Vec<String> {
    let methods: std::collections::BTreeSet<&str> =
        f.figures.values().map(|x| x.method.as_str()).collect();
    let mut out = Vec::new();
    if declared {
        out.push(
            "No metrics source is configured: every figure is the run's requested resources × \
             its running time through the power model. It is an upper bound, not a measurement."
                .to_owned(),
        );
    }
    if !declared && methods.contains("cadvisor") {
        out.push(
            "CPU time and memory are measured: the kernel's cgroup counters read by the \
             kubelet's cAdvisor and scraped by Prometheus (flagged `cadvisor`). The CPU time \
             after cAdvisor's last sample of the container (at most one housekeeping \
             interval) is extrapolated at its last measured rate to the run's end."
                .to_owned(),
        );
        let modelled = |q: &str| f.figures.get(q).is_some_and(|x| x.method == "modelled");
        if modelled("cpu_energy") {
            out.push(
                "No energy meter (RAPL, Kepler, DCGM) covers this run's CPU: its CPU energy is \
                 modelled from the measured CPU time (flagged `modelled`), and so are the \
                 totals built on it."
                    .to_owned(),
            );
        }
    }
    if methods.contains("modelled") {
        out.push(
            "Figures flagged `modelled` come from the documented power model (CPU TDP per core \
             with a linear load curve, DRAM watts per GB, GPU board power × utilisation): \
             estimates to compare orders of magnitude, not meter readings."
                .to_owned(),
        );
    }
    if methods.contains("kepler") {
        out.push(
            "Kepler attributes node-level RAPL/NVML energy to pods by their share of resource \
             usage; the node's idle power is shared out, so small runs on busy nodes carry \
             some of their neighbours' baseline."
                .to_owned(),
        );
    }
    if methods.contains("rapl") {
        out.push(
            "RAPL covers the CPU package and DRAM only, attributed here by CPU-time share; it \
             does not see disks, network or fans."
                .to_owned(),
        );
    }
    if methods.contains("dcgm") {
        out.push(
            "GPU energy is the device's own counter (DCGM): it includes the GPU's idle draw \
             while it was allocated to the run."
                .to_owned(),
        );
    }
    out.push(
        "kWh at the meter = IT energy × the configured PUE, an annual average of the data \
         centre; gCO2e uses an annual average grid intensity (not hourly, not marginal)."
            .to_owned(),
    );
    if f.embodied_gco2e == 0.0 {
        out.push(
            "Embodied emissions are not configured, so SCI counts operational emissions only."
                .to_owned(),
        );
    }
    out
}

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.3e}")
    }
}

const COLOURS: [(&str, &str); 3] = [("CPU", "#3b6ea5"), ("DRAM", "#7fb069"), ("GPU", "#d1495b")];

/// Stacked bars: energy per ledger window, by component.
pub(crate) fn energy_chart(f: &RunFigures) -> String {
    let (w, h, pad) = (640.0, 220.0, 40.0);
    let max = f
        .windows
        .iter()
        .map(|x| x.cpu_joules + x.dram_joules + x.gpu_joules)
        .fold(0.0_f64, f64::max);
    let mut svg = format!(
        r#"<svg role="img" aria-label="Energy per window by component" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    if f.windows.is_empty() || max <= 0.0 {
        svg.push_str(r#"<text x="10" y="30">No energy recorded yet.</text></svg>"#);
        return svg;
    }
    let n = f.windows.len() as f64;
    let bar = ((w - pad) / n).min(60.0);
    for (i, x) in f.windows.iter().enumerate() {
        let mut y = h - pad;
        for ((name, colour), joules) in
            COLOURS
                .iter()
                .zip([x.cpu_joules, x.dram_joules, x.gpu_joules])
        {
            let height = joules / max * (h - 2.0 * pad);
            y -= height;
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{height:.1}" fill="{colour}"><title>{} {name}: {} J</title></rect>"#,
                pad + i as f64 * bar,
                bar * 0.9,
                esc(&x.start.format("%H:%M").to_string()),
                num(joules)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{pad}" y="15" font-size="12">max {} J per window</text>"#,
        num(max)
    );
    for (i, (name, colour)) in COLOURS.iter().enumerate() {
        let x = pad + 200.0 + i as f64 * 80.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="5" width="10" height="10" fill="{colour}"/><text x="{}" y="15" font-size="12">{name}</text>"#,
            x + 14.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars: kWh per functional unit of this run and the previous runs that are
/// comparable with it (same phase, functional unit and method class); none when this run
/// has no functional unit.
fn comparison_chart(report: &RunReport) -> String {
    let Some(this) = report.figures.kwh_per_unit else {
        return "<p>This run counted no functional unit: its energy per unit is unknown, so it is compared with no other run.</p>".into();
    };
    let mut rows: Vec<(String, f64)> = report
        .comparison
        .iter()
        .filter(|c| c.comparable)
        .filter_map(|c| c.kwh_per_unit.map(|v| (c.run.clone(), v)))
        .collect();
    rows.push((format!("{} (this run)", report.run), this));
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max);
    let (w, line) = (640.0, 22.0);
    let h = line * rows.len() as f64 + 30.0;
    let unit = "kWh per functional unit";
    let mut svg = format!(
        r#"<svg role="img" aria-label="Comparison with comparable previous runs ({unit})" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg"><text x="0" y="14" font-size="12">{unit}</text>"#
    );
    for (i, (name, v)) in rows.iter().enumerate() {
        let y = 24.0 + i as f64 * line;
        let len = if max > 0.0 { v / max * 360.0 } else { 0.0 };
        let _ = write!(
            svg,
            r##"<text x="0" y="{:.1}" font-size="12">{}</text><rect x="220" y="{:.1}" width="{len:.1}" height="14" fill="#3b6ea5"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"##,
            y + 11.0,
            esc(name),
            y,
            225.0 + len,
            y + 11.0,
            num(*v)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "unknown".into(), num)
}

/// A table row of one report figure.
fn figure_row(page: &mut String, name: &str, x: &ReportFigure) {
    let range = match (x.low, x.high) {
        (Some(lo), Some(hi)) => format!("{} – {}", num(lo), num(hi)),
        _ => "unknown".into(),
    };
    let _ = write!(
        page,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td class=\"note\">{}<br>{}</td></tr>",
        esc(name),
        opt_num(x.value),
        esc(&x.unit),
        esc(&range),
        x.method.as_str(),
        esc(&x.method_detail),
        esc(&x.source),
        esc(&x.uncertainty)
    );
}

const FIGURE_TABLE: &str = "<table><tr><th>Figure</th><th>Value</th><th>Unit</th><th>Range</th><th>Method</th><th>Source and uncertainty</th></tr>";

/// The structured part: per phase, per functional unit, SCI.
fn frugality_html(page: &mut String, f: &Frugality) {
    page.push_str("<h2>By life-cycle phase</h2>");
    for p in &f.phases {
        let _ = write!(
            page,
            "<h3>{}</h3><p class=\"note\">{}</p>",
            esc(&p.phase),
            esc(&p.note)
        );
        let Some(x) = &p.figures else { continue };
        page.push_str(FIGURE_TABLE);
        for (q, v) in frugality::phase_rows(x) {
            figure_row(page, q, v);
        }
        page.push_str("</table>");
        let h = &x.hardware;
        let _ = write!(
            page,
            "<p>Hardware (declared): cpu {}, memory {}, GPUs {}{}; node model not recorded. Modelled figures assume {}.</p>",
            esc(&h.cpu_requested),
            esc(&h.memory_requested),
            h.gpus_requested,
            h.gpu_resource
                .as_deref()
                .map(|g| format!(" ({})", esc(g)))
                .unwrap_or_default(),
            esc(&h.power_model)
        );
        if let Some(u) = &p.per_unit {
            let _ = write!(
                page,
                "<h4>Per functional unit: {} (count declared: {})</h4>",
                esc(&u.functional_unit),
                u.count
            );
            page.push_str(FIGURE_TABLE);
            figure_row(page, "energy", &u.kwh);
            figure_row(page, "emissions", &u.gco2e);
            figure_row(page, "CPU", &u.cpu_core_hours);
            page.push_str("</table>");
        }
    }
    let s = &f.sci;
    let _ = write!(
        page,
        "<h2>SCI</h2><p>{}: {} {} ({}). Inputs: E = {} kWh ({}), I = {} gCO2e/kWh ({}, {}, {}), M = {} gCO2e, R = {} {} ({}).</p>",
        esc(&s.formula),
        opt_num(s.value.value),
        esc(&s.value.unit),
        s.value.method.as_str(),
        opt_num(s.energy.value),
        s.energy.method.as_str(),
        num(s.intensity.g_per_kwh),
        esc(&s.intensity.source),
        s.intensity.year,
        esc(&s.intensity.scope),
        opt_num(s.embodied.value),
        s.functional_units,
        esc(&s.functional_unit),
        s.functional_unit_method.as_str()
    );
}

fn practices_html(page: &mut String, c: &PracticeChecklist) {
    let _ = write!(
        page,
        "<h2>Good practices, as declared by the vendor</h2><p class=\"note\">Declared, not measured by Serre. {}.{}</p><table><tr><th>Theme</th><th>Practice</th><th>Answer</th><th>Comment</th></tr>",
        esc(&c.reference),
        match (&c.answered_by, &c.answered_at) {
            (Some(by), Some(at)) => format!(" Answered by {} on {}.", esc(by), esc(at)),
            _ => " Not answered yet.".into(),
        }
    );
    for i in &c.items {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.theme),
            esc(&i.practice),
            i.answer.map_or("not answered", |a| a.as_str()),
            esc(i.comment.as_deref().unwrap_or(""))
        );
    }
    page.push_str("</table>");
}

/// The start of a report page, up to and including its heading; `subject` is escaped.
pub(crate) fn page_head(subject: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Frugality report — {s}</title><style>body{{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.note{{color:#555;font-size:0.9em}}</style></head><body><h1>Frugality report — {s}</h1>"#,
        s = esc(subject)
    )
}

pub fn html(r: &RunReport) -> String {
    let f = &r.figures;
    let mut page = page_head(&r.run);
    if !r.final_figures {
        page.push_str(r#"<p><strong>Provisional:</strong> the run is not over or its last window is not accounted yet.</p>"#);
    }
    page.push_str("<table>");
    let facts: [(&str, String); 11] = [
        ("Sandbox", r.sandbox.clone()),
        ("Tenant", r.tenant.clone()),
        ("Solution", r.solution.clone().unwrap_or_else(|| "—".into())),
        ("Kind", r.kind.clone()),
        ("Phase", r.phase.clone()),
        ("Exit", r.exit_reason.clone().unwrap_or_else(|| "—".into())),
        (
            "Quality",
            r.quality
                .as_ref()
                .map_or_else(|| "not reported".into(), |(m, v)| format!("{m} = {v}")),
        ),
        (
            "Started",
            r.started_at.clone().unwrap_or_else(|| "—".into()),
        ),
        (
            "Finished",
            r.finished_at.clone().unwrap_or_else(|| "—".into()),
        ),
        ("Duration", format!("{} s", num(f.duration_seconds))),
        (
            "Requested",
            format!(
                "cpu {}, memory {}, GPUs {}",
                r.requested.cpu, r.requested.memory, r.requested.gpus
            ),
        ),
    ];
    for (k, v) in facts {
        let _ = write!(page, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    page.push_str("</table><h2>Ledger figures, as recorded</h2><table><tr><th>Figure</th><th>Value</th><th>Unit</th><th>Method</th><th>Source</th></tr>");
    for (name, x) in &f.figures {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"note\">{}</td></tr>",
            esc(name),
            num(x.value),
            esc(&x.unit),
            esc(&x.method),
            esc(&x.source)
        );
    }
    page.push_str("</table><ul>");
    let _ = write!(
        page,
        "<li>{} kWh at the meter (method: {}), PUE {} ({})</li><li>{} gCO2e at {} g/kWh ({}, {}, {})</li>",
        num(f.kwh),
        esc(&f.energy_method),
        num(r.carbon.pue),
        esc(&r.carbon.pue_source),
        num(f.gco2e),
        num(r.carbon.g_per_kwh),
        esc(&r.carbon.intensity_source),
        r.carbon.intensity_year,
        esc(&r.carbon.intensity_scope)
    );
    if let (Some(n), Some(unit)) = (f.functional_units, &f.functional_unit) {
        let _ = write!(
            page,
            "<li>{n} × {}: {} kWh and {} gCO2e (SCI) per {}</li>",
            esc(unit),
            num(f.kwh_per_unit.unwrap_or(0.0)),
            num(f.sci_per_unit.unwrap_or(0.0)),
            esc(unit)
        );
    }
    for (label, waste) in [("CPU", f.cpu_waste), ("Memory", f.memory_waste)] {
        match waste {
            Some(w) => {
                let _ = write!(
                    page,
                    "<li>{label} requested but not used: {:.0} %</li>",
                    w * 100.0
                );
            }
            None => {
                let _ = write!(
                    page,
                    "<li>{label} requested but not used: not measured</li>"
                );
            }
        }
    }
    page.push_str("</ul>");
    frugality_html(&mut page, &r.frugality);
    page.push_str("<h2>Energy over time, by component</h2>");
    page.push_str(&energy_chart(f));
    page.push_str("<h2>Compared with previous runs of the same solution you may read</h2>");
    if r.comparison.is_empty() {
        page.push_str("<p>No previous run of this solution that you may read.</p>");
    }
    for c in r.comparison.iter().filter(|c| !c.comparable) {
        let _ = write!(
            page,
            "<p class=\"note\">Not compared: {} ({}).</p>",
            esc(&c.run),
            esc(c.not_comparable.as_deref().unwrap_or(""))
        );
    }
    page.push_str(&comparison_chart(r));
    page.push_str("<h2>Caveats</h2><ul>");
    for c in &r.caveats {
        let _ = write!(page, "<li>{}</li>", esc(c));
    }
    page.push_str("</ul>");
    practices_html(&mut page, &r.practices);
    let _ = write!(
        page,
        "<p class=\"note\">Generated {} by Serre.</p></body></html>",
        r.generated_at.to_rfc3339()
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::figures::Figure;

    fn figure(method: &str) -> Figure {
        Figure {
            value: 1.0,
            unit: "x".into(),
            method: method.into(),
            source: String::new(),
        }
    }

    fn report(comparison: Vec<Comparison>) -> RunReport {
        let mut f = RunFigures::default();
        for (q, m) in [("cpu_used", "cadvisor"), ("cpu_energy", "modelled")] {
            f.figures.insert(q.into(), figure(m));
        }
        f.kwh_per_unit = Some(0.001);
        let inputs = frugality::ReportInputs {
            phase: "inference".into(),
            functional_unit: Some(("request".into(), 10)),
            ..frugality::ReportInputs::default()
        };
        RunReport {
            run: "run-1".into(),
            sandbox: "s".into(),
            tenant: "t".into(),
            solution: Some("sol".into()),
            kind: "inference".into(),
            phase: "Succeeded".into(),
            requested_by: "acme".into(),
            started_at: None,
            finished_at: None,
            exit_reason: None,
            quality: None,
            requested: Requested {
                cpu: "1".into(),
                memory: "1Gi".into(),
                gpus: 0,
            },
            final_figures: true,
            frugality: frugality::build(&f, &inputs),
            figures: f,
            carbon: CarbonNote::from_params(&CarbonParams::default()),
            comparison,
            caveats: vec![],
            practices: frugality::checklist(None, None, None),
            generated_at: chrono::Utc::now(),
        }
    }

    fn compared(run: &str, comparable: bool) -> Comparison {
        Comparison {
            run: run.into(),
            kind: "inference".into(),
            finished_at: None,
            duration_seconds: 1.0,
            kwh: 1.0,
            gco2e: 1.0,
            kwh_per_unit: Some(0.5),
            sci_per_unit: None,
            energy_method: "modelled".into(),
            method_class: MethodClass::Modelled,
            functional_unit: Some("request".into()),
            comparable,
            not_comparable: (!comparable).then(|| "a different functional unit".into()),
        }
    }

    #[test]
    fn the_page_shows_phases_ranges_and_the_declared_checklist_apart() {
        let page = html(&report(vec![
            compared("run-old", true),
            compared("run-other", false),
        ]));
        assert!(
            page.contains("<h3>data-preparation</h3>"),
            "unknown phases are listed"
        );
        assert!(page.contains("energy_cpu_kwh"));
        assert!(page.contains("modelled (modelled)"));
        assert!(page.contains("Good practices, as declared by the vendor"));
        assert!(page.contains("Not answered yet."));
        // The comparable run is charted, the other one named with the reason.
        assert!(page.contains(">run-old<"), "{page}");
        assert!(!page.contains(">run-other<"));
        assert!(page.contains("Not compared: run-other (a different functional unit)"));
        // The JSON holds the same structure, the checklist under `practices`.
        let v = serde_json::to_value(report(vec![])).unwrap();
        assert_eq!(v["practices"]["method"], "declared");
        assert_eq!(v["phases"].as_array().unwrap().len(), 5);
        assert_eq!(v["sci"]["functionalUnit"], "request");
    }

    #[test]
    fn caveats_say_what_was_measured_and_what_was_modelled() {
        let mut f = RunFigures::default();
        for (q, m) in [
            ("cpu_used", "cadvisor"),
            ("memory_used", "cadvisor"),
            ("cpu_energy", "modelled"),
            ("meter_energy", "modelled"),
        ] {
            f.figures.insert(q.into(), figure(m));
        }
        let c = caveats(&f, false);
        assert!(c[0].contains("CPU time and memory are measured"), "{c:?}");
        assert!(
            c[1].contains("modelled from the measured CPU time"),
            "{c:?}"
        );
        assert!(c[2].contains("power model"), "{c:?}");
        // Declared mode: nothing is said to be measured.
        let c = caveats(&f, true);
        assert!(c.iter().all(|c| !c.contains("are measured")), "{c:?}");
        // Measured energy: no "modelled from CPU time" caveat.
        f.figures.insert("cpu_energy".into(), figure("rapl"));
        let c = caveats(&f, false);
        assert!(c.iter().all(|c| !c.contains("modelled from")), "{c:?}");
    }
}
