//! The console's words: labels of states and criteria, sizes, numbers and dates in the
//! request's language (`lang.rs`), and the API's validation issues in French (by field and
//! rule; the API's English message is kept when no rule matches, and always in English).

use super::lang::{Lang, tr, trf};
use crate::sandboxes::FieldIssue;

pub fn request_state(state: &str) -> &'static str {
    match state {
        "PendingApproval" => tr("En attente d'approbation"),
        "Approved" => tr("Approuvé"),
        "Rejected" => tr("Refusé"),
        "Deleting" => tr("Suppression en cours"),
        _ => tr("État inconnu"),
    }
}

/// DSFR badge class of a request state.
pub fn request_badge(state: &str) -> &'static str {
    match state {
        "PendingApproval" => "fr-badge--warning",
        "Approved" => "fr-badge--success",
        "Rejected" => "fr-badge--error",
        _ => "fr-badge--info",
    }
}

pub fn cluster_state(state: &str) -> &'static str {
    match state {
        "NotRequested" => tr("Non demandé au cluster"),
        "WaitingForCluster" => tr("En attente du cluster"),
        "Applied" => tr("Créé sur le cluster"),
        "ApplyFailed" => tr("Échec de la création"),
        "Deleting" => tr("Suppression en cours"),
        "ClusterDisabled" | "Disabled" => tr("Sans cluster (mode local)"),
        _ => tr("Inconnu"),
    }
}

/// « dans 12 jours », « aujourd'hui », « expiré ».
pub fn countdown(days: i64) -> String {
    match days {
        d if d < 0 => tr("expiré").into(),
        0 => tr("expire aujourd'hui").into(),
        1 => tr("dans 1 jour").into(),
        d => trf("dans {} jours", &[&d]),
    }
}

/// A dataset's classification.
pub fn classification(c: &str) -> &'static str {
    match c {
        "open" => tr("Ouvertes"),
        "internal" => tr("Internes"),
        "personal" => tr("Personnelles"),
        "anonymised" => tr("Anonymisées"),
        _ => tr("Inconnue"),
    }
}

/// DSFR badge class of a classification.
pub fn classification_badge(c: &str) -> &'static str {
    match c {
        "open" => "fr-badge--success",
        "personal" => "fr-badge--error",
        "internal" => "fr-badge--warning",
        _ => "fr-badge--info",
    }
}

/// A size in bytes, « 12,3 Mo » (« 12.3 MB » in English).
pub fn bytes(n: i64) -> String {
    let lang = Lang::current();
    let units = match lang {
        Lang::Fr => ["octets", "Ko", "Mo", "Go", "To"],
        Lang::En => ["bytes", "kB", "MB", "GB", "TB"],
    };
    let mut v = n.max(0) as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} {}", units[0])
    } else {
        format!("{} {}", lang.decimal(v, 1), units[u])
    }
}

/// A whole number with the language's digit groups (« 12 345 », a narrow no-break space;
/// « 12,345 » in English).
pub fn number(n: i64) -> String {
    Lang::current().number(n)
}

/// A decimal number (« 1 234,5 »; « 1,234.5 » in English).
pub fn decimal(v: f64, decimals: usize) -> String {
    Lang::current().decimal(v, decimals)
}

/// « 1 ligne », « 12 lignes » (0 and 1 take the singular in French, 1 only in English).
pub fn lines(n: u64) -> String {
    let one = match Lang::current() {
        Lang::Fr => n <= 1,
        Lang::En => n == 1,
    };
    let word = if one { tr("ligne") } else { tr("lignes") };
    format!("{} {word}", number(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// The `strftime` pattern of a day (« 07/12/2026 »; « 7 Dec 2026 » in English).
pub fn day_pattern() -> &'static str {
    match Lang::current() {
        Lang::Fr => "%d/%m/%Y",
        Lang::En => "%-d %b %Y",
    }
}

/// A day (see [`day_pattern`]).
pub fn day(d: chrono::DateTime<chrono::Utc>) -> String {
    d.format(day_pattern()).to_string()
}

/// A UTC time (« 07/12/2026 14:05 UTC »; « 7 Dec 2026 14:05 UTC » in English).
pub fn time(d: chrono::DateTime<chrono::Utc>) -> String {
    format!("{} UTC", d.format(&format!("{} %H:%M", day_pattern())))
}

/// An RFC 3339 time as [`time`] does (the text itself when unreadable).
pub fn when(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| time(d.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| t.to_owned())
}

/// The form field an issue belongs to (the input's id), if any.
pub fn form_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "tenant" => "tenant",
        "name" => "name",
        "purpose" => "purpose",
        "resources.cpu" => "cpu",
        "resources.memory" => "memory",
        "resources.storage" => "storage",
        "expiresAt" => "expires",
        _ => return None,
    })
}

/// One validation issue in French; in English, the API's own message.
pub fn issue(i: &FieldIssue) -> String {
    if Lang::current() == Lang::En {
        return i.message.clone();
    }
    let quantity =
        "Quantité invalide : un nombre, éventuellement suivi d'une unité (ex. 2, 500m, 4Gi).";
    match (i.field.as_str(), i.rule.as_str()) {
        ("tenant", "required") => "Choisissez une collectivité.".into(),
        ("tenant", "unknown_tenant") => {
            "Collectivité inconnue, ou dont vous n'êtes pas membre.".into()
        }
        ("name", "dns_label") => {
            "Le nom ne peut contenir que des lettres minuscules, des chiffres \
             et des tirets, et doit commencer et finir par une lettre ou un chiffre."
                .into()
        }
        ("name", "no_double_dash") => "Le nom ne doit pas contenir « -- ».".into(),
        ("name", "max_length") => "Le nom est trop long.".into(),
        ("name", "conflict") => "Ce nom est déjà pris dans cette collectivité.".into(),
        ("purpose", "required") => {
            "Indiquez la finalité du bac à sable (limitation des finalités, RGPD).".into()
        }
        ("purpose", "max_length") => "La finalité doit tenir en 2 000 caractères.".into(),
        (_, "positive") => "La valeur doit être supérieure à zéro.".into(),
        (_, "quantity_syntax") => quantity.into(),
        (_, "minimum") => format!("Valeur trop petite ({}).", i.message),
        (_, "within_allowance") => {
            format!("Dépasse l'allocation de la collectivité ({}).", i.message)
        }
        ("expiresAt", "timestamp_syntax") | ("expiresAt", "required") => {
            "Indiquez une date d'expiration valide.".into()
        }
        ("expiresAt", "in_future") => "La date d'expiration doit être dans le futur.".into(),
        ("expiresAt", "max_lifetime") => {
            format!(
                "La durée de vie dépasse le maximum autorisé ({}).",
                i.message
            )
        }
        (_, "required") => "Ce champ est obligatoire.".into(),
        _ => format!("Valeur refusée : {}", i.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_read_in_french_and_unknown_rules_keep_the_api_message() {
        let i = FieldIssue::new("name", "dns_label", "must be lowercase");
        assert!(issue(&i).starts_with("Le nom ne peut contenir"));
        let i = FieldIssue::new("x", "novel_rule", "some message");
        assert_eq!(issue(&i), "Valeur refusée : some message");
        assert_eq!(countdown(3), "dans 3 jours");
        assert_eq!(bytes(999), "999 octets");
        assert_eq!(bytes(12_345), "12,3 Ko");
        assert_eq!(number(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(number(12), "12");
        assert_eq!((lines(1), lines(5)), ("1 ligne".into(), "5 lignes".into()));
        assert_eq!(when("2026-12-07T14:05:00Z"), "07/12/2026 14:05 UTC");
        assert_eq!(decimal(1234.5, 1), "1\u{202f}234,5");
    }
}
