//! Charts drawn on the server as SVG: readable without JavaScript, sized by the page,
//! each with a title and a description for assistive technologies — and each shown
//! beside a table of the same numbers (the page's job). Horizontal bars: one row per
//! label, the value written at the end of its bar.

use super::lang::tr;
use std::fmt::Write;

/// One bar: its label and value.
pub struct Bar {
    pub label: String,
    pub value: f64,
}

/// What can be wrong with a chart's data.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChartError {
    #[error("bar {0:?} has a value that is negative or not a number")]
    BadValue(String),
}

/// XML text escaping for SVG content and attributes.
fn escape(s: &str) -> String {
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

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 200.0;
const VALUE_WIDTH: f64 = 110.0;
const ROW: f64 = 28.0;
const BAR: f64 = 18.0;

/// A horizontal bar chart as an `<svg>` element (`role="img"`, titled and described via
/// `aria-labelledby`). `id` makes the title and description ids unique in the page;
/// `format` writes a value with its unit (used at the end of each bar).
pub fn bars(
    id: &str,
    title: &str,
    description: &str,
    data: &[Bar],
    format: impl Fn(f64) -> String,
) -> Result<String, ChartError> {
    if let Some(b) = data
        .iter()
        .find(|b| !(b.value >= 0.0 && b.value.is_finite()))
    {
        return Err(ChartError::BadValue(b.label.clone()));
    }
    let max = data.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
    let height = (data.len().max(1) as f64) * ROW + 8.0;
    let id = escape(id);
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="serre-chart" id="{id}" role="img" aria-labelledby="{id}-titre {id}-desc" viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet"><title id="{id}-titre">{}</title><desc id="{id}-desc">{}</desc>"##,
        escape(title),
        escape(description)
    );
    if data.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="0" y="20" font-size="14" fill="#3a3a3a">{}</text>"##,
            escape(tr("Aucune donnée"))
        );
    }
    for (i, b) in data.iter().enumerate() {
        let y = (i as f64) * ROW + 4.0;
        let w = if max > 0.0 { b.value / max * plot } else { 0.0 };
        let _ = write!(
            svg,
            r##"<g><text x="{:.1}" y="{:.1}" font-size="13" text-anchor="end" fill="#161616">{}</text><rect x="{LABEL_WIDTH}" y="{y:.1}" width="{w:.1}" height="{BAR}" fill="#000091"></rect><text x="{:.1}" y="{:.1}" font-size="13" fill="#161616">{}</text></g>"##,
            LABEL_WIDTH - 8.0,
            y + BAR - 4.0,
            escape(&b.label),
            LABEL_WIDTH + w + 6.0,
            y + BAR - 4.0,
            escape(&format(b.value)),
        );
    }
    svg.push_str("</svg>");
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
        }
    }

    #[test]
    fn bars_are_proportional_labelled_and_escaped() {
        let svg = bars(
            "c",
            "Énergie <par> mois",
            "kWh",
            &[
                bar("janv. & févr.", 2.0),
                bar("mars", 1.0),
                bar("avril", 0.0),
            ],
            |v| format!("{v} kWh"),
        )
        .unwrap_or_default();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(
            svg.contains(r#"role="img""#) && svg.contains(r#"aria-labelledby="c-titre c-desc""#)
        );
        assert!(svg.contains("Énergie &lt;par&gt; mois"), "{svg}");
        assert!(svg.contains("janv. &amp; févr."), "{svg}");
        let plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        assert!(
            svg.contains(&format!(r#"width="{plot:.1}""#)),
            "the largest fills the plot"
        );
        assert!(
            svg.contains(&format!(r#"width="{:.1}""#, plot / 2.0)),
            "half of it"
        );
        assert!(svg.contains(r#"width="0.0""#) && svg.contains("2 kWh"));
    }

    #[test]
    fn empty_and_bad_data() {
        let svg = bars("e", "t", "d", &[], |v| v.to_string()).unwrap_or_default();
        assert!(svg.contains("Aucune donnée"));
        let zero = bars("z", "t", "d", &[bar("a", 0.0)], |v| v.to_string()).unwrap_or_default();
        assert!(
            zero.contains(r#"width="0.0""#),
            "no division by zero: {zero}"
        );
        assert_eq!(
            bars("x", "t", "d", &[bar("a", f64::NAN)], |v| v.to_string()),
            Err(ChartError::BadValue("a".into()))
        );
        assert!(bars("x", "t", "d", &[bar("a", -1.0)], |v| v.to_string()).is_err());
    }
}
