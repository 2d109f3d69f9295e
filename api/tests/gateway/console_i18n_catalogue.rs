//! The console's message catalogue cannot rot: every message of the console's code
//! (`tr("…")`, `trf("…")` in `api/src/console/*.rs`) and templates (`layout.t("…")`,
//! `layout.t1(…)` … in `api/templates/console/*.html`) has an English entry in
//! `api/src/console/english.rs`, every English entry is used, their `{}` agree, and no
//! template holds visible French outside the catalogue (text, `title`, `aria-label`, `alt`,
//! `placeholder`). No gateway needed: this reads the sources. The pages in English over
//! HTTP: `console_i18n.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serre_api::console::english::ENGLISH;

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no .{ext} in {}", dir.display());
    out
}

/// The string literal starting at `s` (just after its opening quote), unescaped as Rust
/// does (`\"`, `\\`, `\n`, and a `\` at a line's end, which drops the line break and the
/// next line's leading blanks); `None` when it does not end.
fn literal(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '\n' => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// The messages of `text`: the literals right after each of `calls` (e.g. `tr("`), with
/// the line each is on; comment lines are skipped.
fn messages(text: &str, calls: &[&str], file: &Path, out: &mut BTreeMap<String, String>) {
    for call in calls {
        let mut from = 0;
        while let Some(i) = text[from..].find(call) {
            let at = from + i;
            from = at + call.len();
            // `tr(` but not `attr(`: the call starts a word.
            let before = text[..at].chars().next_back();
            if !call.starts_with('.') && before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
            if text[line_start..at].trim_start().starts_with("//") {
                continue;
            }
            let rest = text[from..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                // A call on a variable (e.g. `layout.t(label)`) is not a catalogue key.
                continue;
            };
            let key =
                literal(rest).unwrap_or_else(|| panic!("{}: unterminated message", file.display()));
            let line = text[..at].matches('\n').count() + 1;
            out.entry(key)
                .or_insert_with(|| format!("{}:{line}", file.display()));
        }
    }
}

/// Every message the console uses, with where it is first used.
fn used_messages() -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for f in files("src/console", "rs") {
        let text = std::fs::read_to_string(&f).expect("source");
        // Unit tests are not user-visible.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        messages(code, &["tr(", "trf("], &f, &mut keys);
    }
    for f in files("templates/console", "html") {
        let text = std::fs::read_to_string(&f).expect("template");
        messages(
            &text,
            &[".t(", ".t1(", ".t2(", ".t3(", ".t5("],
            &f,
            &mut keys,
        );
    }
    keys
}

#[test]
fn every_message_has_its_english_and_every_english_entry_is_used() {
    let used = used_messages();
    assert!(
        used.len() > 300,
        "only {} messages found: is the scan still finding them?",
        used.len()
    );
    let english: BTreeMap<&str, &str> = ENGLISH.iter().copied().collect();
    assert_eq!(
        english.len(),
        ENGLISH.len(),
        "a French key appears twice in english.rs"
    );

    let missing: Vec<String> = used
        .iter()
        .filter(|(k, _)| !english.contains_key(k.as_str()))
        .map(|(k, at)| format!("{at}: {k:?}"))
        .collect();
    assert!(
        missing.is_empty(),
        "messages without English in api/src/console/english.rs:\n{}",
        missing.join("\n")
    );
    let unused: Vec<&&str> = english.keys().filter(|k| !used.contains_key(**k)).collect();
    assert!(
        unused.is_empty(),
        "English entries no page or handler uses (remove them): {unused:?}"
    );
    for (fr, en) in &english {
        assert_eq!(
            fr.matches("{}").count(),
            en.matches("{}").count(),
            "{fr:?} and its English {en:?} fill a different number of {{}}"
        );
        assert!(!en.trim().is_empty(), "{fr:?} has an empty English");
    }
}

/// Words that stay as they are in every language: the service's name, the State's logo
/// (always in French) and file formats.
const ALWAYS: [&str; 5] = ["Serre", "République", "Française", "CSV", "Parquet"];

/// `s` with every `open … close` span replaced by `with`.
fn without(s: &str, open: &str, close: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        out.push_str(&rest[..i]);
        out.push_str(with);
        match rest[i + open.len()..].find(close) {
            Some(j) => rest = &rest[i + open.len() + j + close.len()..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn templates_show_no_text_outside_the_catalogue() {
    let mut found = BTreeSet::new();
    for f in files("templates/console", "html") {
        let mut s = std::fs::read_to_string(&f).expect("template");
        // Code (commands, paths) is not translated; template syntax is not shown.
        for (open, close) in [
            ("<code", "</code>"),
            ("<!--", "-->"),
            ("{%", "%}"),
            ("{#", "#}"),
            ("{{", "}}"),
        ] {
            s = without(&s, open, close, " ");
        }
        // Attributes people read (screen readers, tooltips), then the text between tags.
        for attr in ["title=\"", "aria-label=\"", "alt=\"", "placeholder=\""] {
            let mut rest = s.as_str();
            while let Some(i) = rest.find(attr) {
                let value = &rest[i + attr.len()..];
                let end = value.find('"').unwrap_or(value.len());
                if value[..end].chars().any(char::is_alphabetic) {
                    found.insert(format!("{}: {attr}{}\"", f.display(), &value[..end]));
                }
                rest = &value[end..];
            }
        }
        let text = without(&without(&s, "<", ">", " "), "&", ";", " ");
        for word in text.split(|c: char| !(c.is_alphabetic() || c == '\'' || c == '-')) {
            let word = word.trim_matches(|c: char| c == '\'' || c == '-');
            if word.chars().any(char::is_alphabetic) && !ALWAYS.contains(&word) {
                found.insert(format!("{}: {word:?}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "visible text outside layout.t(…) (wrap it, and add its English to english.rs):\n{}",
        found.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_scan_finds_what_it_must() {
    // The scanner itself: a call's literal with escapes and a continued line, not a
    // comment, not a longer name ending in `tr(`.
    let mut keys = BTreeMap::new();
    let code =
        "let a = tr(\"Un \\\"mot\\\" \\\n      suite\");\n// tr(\"commentaire\")\nattr(\"x\");";
    messages(code, &["tr("], Path::new("t.rs"), &mut keys);
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        vec![&"Un \"mot\" suite".to_owned()]
    );
}
