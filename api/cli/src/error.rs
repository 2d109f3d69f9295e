//! What can go wrong, and the exit status each kind gives (docs/cli.md, *Exit codes*).

use std::fmt;

use serde::Deserialize;

/// Exit status: the gateway refused, or a local error (a file that cannot be read…).
pub const EXIT_REFUSED: u8 = 1;
/// Exit status: a usage error (bad flags, nothing to talk to).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: not signed in, or the sign-in expired or was refused.
pub const EXIT_AUTH: u8 = 3;
/// Exit status: the gateway or the provider could not be reached.
pub const EXIT_NETWORK: u8 = 4;
/// Exit status of `serre runs watch`: the run ended, but not `Succeeded`.
pub const EXIT_RUN_FAILED: u8 = 5;
/// Exit status of a check that ran and failed: `serre grants preview` (creating the grant
/// would be refused) and `serre audit verify` (the chain is broken).
pub const EXIT_CHECK_FAILED: u8 = 6;

/// A failure with its own exit status; anything else exits with [`EXIT_REFUSED`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Gateway(GatewayError),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Auth(_) => EXIT_AUTH,
            Failure::Network(_) => EXIT_NETWORK,
            Failure::Gateway(_) => EXIT_REFUSED,
        }
    }
}

/// The exit status for an error: its [`Failure`] kind, else [`EXIT_REFUSED`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map_or(EXIT_REFUSED, Failure::exit_code)
}

/// One `details` entry of a gateway error (a field and the rule it breaks).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Detail {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub message: String,
}

/// The gateway's answer to a refused request:
/// `{"error": {"code", "message", "details": [{"field", "rule", "message"}]?}}`.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Vec<Detail>,
}

impl GatewayError {
    /// Parse an error body; one that is not the gateway's shape keeps its text as message.
    pub fn from_body(status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            details: Vec<Detail>,
        }
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error }) => GatewayError {
                status,
                code: error.code,
                message: error.message,
                details: error.details,
            },
            Err(_) => GatewayError {
                status,
                code: String::new(),
                message: String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(500)
                    .collect(),
                details: Vec::new(),
            },
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() {
            "no error code"
        } else {
            &self.code
        };
        write!(
            f,
            "the gateway refused ({} {code}): {}",
            self.status, self.message
        )?;
        for d in &self.details {
            let field = if d.field.is_empty() { "-" } else { &d.field };
            write!(f, "\n  {field}: {}", d.message)?;
            if !d.rule.is_empty() {
                write!(f, " ({})", d.rule)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_code_message_and_each_detail() {
        let body = br#"{"error":{"code":"validation_failed","message":"the request is invalid",
            "details":[{"field":"resources.cpu","rule":"quantity_syntax","message":"\"x\" is not a quantity"},
                       {"field":"name","rule":"dns_label","message":"not a DNS label"}]}}"#;
        let e = GatewayError::from_body(422, body);
        assert_eq!(
            e.to_string(),
            "the gateway refused (422 validation_failed): the request is invalid\n  \
             resources.cpu: \"x\" is not a quantity (quantity_syntax)\n  \
             name: not a DNS label (dns_label)"
        );
    }

    #[test]
    fn keeps_a_foreign_body_as_the_message() {
        let e = GatewayError::from_body(502, b"Bad Gateway\n");
        assert_eq!(
            e.to_string(),
            "the gateway refused (502 no error code): Bad Gateway"
        );
    }

    #[test]
    fn exit_codes_follow_the_kind() {
        let e = anyhow::Error::new(Failure::Auth("x".into())).context("while listing");
        assert_eq!(exit_code(&e), EXIT_AUTH);
        assert_eq!(exit_code(&anyhow::anyhow!("read FILE")), EXIT_REFUSED);
    }
}
