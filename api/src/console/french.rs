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
    }
}
