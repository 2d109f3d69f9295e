//! The console's words: labels of states and criteria, and the API's validation issues in
//! French (by field and rule; the API's English message is kept when no rule matches).

use crate::sandboxes::FieldIssue;

pub fn request_state(state: &str) -> &'static str {
    match state {
        "PendingApproval" => "En attente d'approbation",
        "Approved" => "Approuvé",
        "Rejected" => "Refusé",
        "Deleting" => "Suppression en cours",
        _ => "État inconnu",
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
        "NotRequested" => "Non demandé au cluster",
        "WaitingForCluster" => "En attente du cluster",
        "Applied" => "Créé sur le cluster",
        "ApplyFailed" => "Échec de la création",
        "Deleting" => "Suppression en cours",
        "ClusterDisabled" | "Disabled" => "Sans cluster (mode local)",
        _ => "Inconnu",
    }
}

/// « dans 12 jours », « aujourd'hui », « expiré ».
pub fn countdown(days: i64) -> String {
    match days {
        d if d < 0 => "expiré".into(),
        0 => "expire aujourd'hui".into(),
        1 => "dans 1 jour".into(),
        d => format!("dans {d} jours"),
    }
}

/// A dataset's classification.
pub fn classification(c: &str) -> &'static str {
    match c {
        "open" => "Ouvertes",
        "internal" => "Internes",
        "personal" => "Personnelles",
        "anonymised" => "Anonymisées",
        _ => "Inconnue",
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

/// A size in bytes, « 12,3 Mo ».
pub fn bytes(n: i64) -> String {
    let units = ["octets", "Ko", "Mo", "Go", "To"];
    let mut v = n.max(0) as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} octets")
    } else {
        format!("{v:.1} {}", units[u]).replace('.', ",")
    }
}

/// A whole number with French digit groups (« 12 345 »; a narrow no-break space).
pub fn number(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// « 1 ligne », « 12 lignes » (0 and 1 take the singular in French).
pub fn lines(n: u64) -> String {
    let word = if n <= 1 { "ligne" } else { "lignes" };
    format!("{} {word}", number(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// An RFC 3339 time as « 07/12/2026 14:05 UTC » (the text itself when unreadable).
pub fn when(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%d/%m/%Y %H:%M UTC")
                .to_string()
        })
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

/// One validation issue in French.
pub fn issue(i: &FieldIssue) -> String {
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
    }
}
