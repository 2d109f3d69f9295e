//! The console's language: French by default, English on request.
//!
//! Chosen per request by [`middleware`]: `?lang=fr|en` (remembered in the `serre_lang`
//! cookie), else that cookie, else the `Accept-Language` header (q-values honoured), else
//! French. The choice is set for the request's task ([`Lang::current`]), so that every
//! string of the console goes through [`tr`] / [`trf`] (Rust) or `layout.t(…)` (templates)
//! wherever it is built. The messages are gettext-style: the French text is the key and
//! `english.rs` holds its English; `api/tests/console_i18n_catalogue.rs` fails when a key
//! has no English or an English entry is used nowhere.

use std::fmt::Display;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::WebState;

/// The cookie that remembers a language chosen with `?lang=`.
pub const LANG_COOKIE: &str = "serre_lang";

/// A language of the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    Fr,
    En,
}

/// What the request's task knows of its language and address (see [`middleware`]).
#[derive(Clone, Debug, Default)]
pub struct Here {
    pub lang: Lang,
    /// The page's address without `lang=`, where the language switch points; `/console`
    /// for a form's answer (a POST address may have no page).
    pub page: String,
}

tokio::task_local! {
    static HERE: Here;
}

impl Lang {
    /// `fr` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The language's name in itself (« Français », « English »).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Fr => "Français",
            Lang::En => "English",
        }
    }

    /// `fr` or `en` (any case); anything else is not a language of the console.
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of the request being served (French outside a request).
    pub fn current() -> Lang {
        HERE.try_with(|h| h.lang).unwrap_or_default()
    }

    /// The best of French and English for an `Accept-Language` header (RFC 9110 §12.5.4):
    /// ranges by decreasing q-value (ties in the header's order), a range matching by its
    /// primary subtag (`en-GB` is English); `*` or no match: none.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut ranges: Vec<(f32, &str)> = header
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let range = it.next()?.trim();
                let mut q = 1.0_f32;
                for p in it {
                    if let Some(v) = p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")) {
                        q = v
                            .trim()
                            .parse()
                            .ok()
                            .filter(|q: &f32| (0.0..=1.0).contains(q))?;
                    }
                }
                (!range.is_empty() && q > 0.0).then_some((q, range))
            })
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges
            .iter()
            .find_map(|(_, r)| Lang::parse(r.split('-').next().unwrap_or_default()))
    }

    /// The French text `fr` in this language (itself in French, or when it has no English).
    pub fn t(self, fr: &'static str) -> &'static str {
        match self {
            Lang::Fr => fr,
            Lang::En => super::english::english(fr).unwrap_or(fr),
        }
    }

    /// [`Lang::t`] with its `{}` replaced, in order, by `args`.
    pub fn tf(self, fr: &'static str, args: &[&dyn Display]) -> String {
        let mut out = String::new();
        let mut args = args.iter();
        let mut rest = self.t(fr);
        while let Some(i) = rest.find("{}") {
            out.push_str(&rest[..i]);
            if let Some(a) = args.next() {
                out.push_str(&a.to_string());
            }
            rest = &rest[i + 2..];
        }
        out.push_str(rest);
        out
    }

    /// A number with `decimals` digits after the point: « 1 234,5 » in French (a narrow
    /// no-break space between groups), « 1,234.5 » in English.
    pub fn decimal(self, v: f64, decimals: usize) -> String {
        let s = format!("{:.*}", decimals, v.abs());
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let (group, point) = match self {
            Lang::Fr => ('\u{202f}', ','),
            Lang::En => (',', '.'),
        };
        let mut out = String::new();
        if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
            out.push('-');
        }
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i).is_multiple_of(3) {
                out.push(group);
            }
            out.push(c);
        }
        if !frac.is_empty() {
            out.push(point);
            out.push_str(frac);
        }
        out
    }

    /// `v` with the digits Rust would write (at most 4 after the point), in this language.
    pub fn plain(self, v: f64) -> String {
        let s = v.to_string();
        let decimals = s.split_once('.').map_or(0, |(_, f)| f.len().min(4));
        self.decimal(v, decimals)
    }

    /// A whole number with this language's digit groups.
    pub fn number(self, n: i64) -> String {
        self.decimal(n as f64, 0)
    }
}

/// The French text `fr` in the request's language. Every user-visible string of the
/// console's Rust code goes through this (or [`trf`]), so that the catalogue test finds it.
pub fn tr(fr: &'static str) -> &'static str {
    Lang::current().t(fr)
}

/// [`tr`] with its `{}` replaced, in order, by `args`.
pub fn trf(fr: &'static str, args: &[&dyn Display]) -> String {
    Lang::current().tf(fr, args)
}

/// The page's address for the language switch (see [`Here::page`]).
pub fn current_page() -> String {
    HERE.try_with(|h| h.page.clone())
        .unwrap_or_else(|_| "/console".to_owned())
}

/// The request's language (see the module's doc); `?lang=` is remembered in a cookie
/// (`SameSite=Lax`, a year, `Path=/console`). Responses say `Content-Language`.
pub async fn middleware(State(app): State<WebState>, req: Request, next: Next) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let asked = query
        .split('&')
        .filter_map(|p| p.strip_prefix("lang="))
        .find_map(Lang::parse);
    let lang = asked
        .or_else(|| super::pages::cookie(req.headers(), LANG_COOKIE).and_then(Lang::parse))
        .or_else(|| {
            req.headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or_default();
    let page = if req.method() == Method::GET {
        let rest: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("lang="))
            .collect();
        // The console is nested under `/console`, which its routes' URIs have lost.
        let path = match req.uri().path() {
            "/" | "" => "/console".to_owned(),
            p => format!("/console{p}"),
        };
        if rest.is_empty() {
            path
        } else {
            format!("{path}?{}", rest.join("&"))
        }
    } else {
        "/console".to_owned()
    };
    let secure = app.console.secure_cookies(req.headers());
    let mut resp = HERE.scope(Here { lang, page }, next.run(req)).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    if let Some(l) = asked {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/console; Max-Age=31536000; SameSite=Lax; HttpOnly{}",
            l.code(),
            if secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// A link to `page` in `lang`: `page?lang=en` or `page?x=1&lang=en`.
pub fn switch_href(page: &str, lang: Lang) -> String {
    let sep = if page.contains('?') { '&' } else { '?' };
    format!("{page}{sep}lang={}", lang.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_follows_q_values() {
        let best = Lang::from_accept_language;
        assert_eq!(best("en-GB,en;q=0.9"), Some(Lang::En));
        assert_eq!(best("fr-FR"), Some(Lang::Fr));
        assert_eq!(best("de-DE,en;q=0.5,fr;q=0.8"), Some(Lang::Fr));
        assert_eq!(best("fr;q=0.2, EN;q=0.7"), Some(Lang::En));
        assert_eq!(best("en;q=0, fr;q=0.1"), Some(Lang::Fr));
        assert_eq!(best("de, it;q=0.9"), None);
        assert_eq!(best("*"), None);
        assert_eq!(
            best("en;q=2, fr;q=0.5"),
            Some(Lang::Fr),
            "q beyond 1 is invalid"
        );
        assert_eq!(best(""), None);
    }

    #[test]
    fn numbers_per_language() {
        assert_eq!(Lang::Fr.decimal(1234.5, 1), "1\u{202f}234,5");
        assert_eq!(Lang::En.decimal(1234.5, 1), "1,234.5");
        assert_eq!(Lang::En.number(-1_234_567), "-1,234,567");
        assert_eq!(Lang::Fr.number(12), "12");
        assert_eq!(Lang::En.decimal(-0.01, 1), "0.0");
        assert_eq!(
            (Lang::Fr.plain(1.58), Lang::En.plain(52.0)),
            ("1,58".into(), "52".into())
        );
    }

    #[test]
    fn messages_outside_a_request_are_french() {
        assert_eq!(tr("Page introuvable"), "Page introuvable");
        assert_eq!(Lang::En.t("Page introuvable"), "Page not found");
        assert_eq!(Lang::En.tf("dans {} jours", &[&3]), "in 3 days".to_owned());
        assert_eq!(
            switch_href("/console/donnees?version=2", Lang::En),
            "/console/donnees?version=2&lang=en"
        );
    }
}
