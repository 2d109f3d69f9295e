//! Flags of the web console: its public address, its OpenID client and its sessions.

use std::time::Duration;

use super::parse_duration;

/// Console settings (flags and environment).
#[derive(Clone, Debug, clap::Args)]
pub struct ConsoleConfig {
    /// Public address of the gateway as browsers reach it (e.g. `https://serre.example.fr`);
    /// the console's redirect URI is `<url>/console/auth/callback`. Unset: the request's
    /// `Host`, accepted on loopback only (development).
    #[arg(long, env = "SERRE_API_CONSOLE_URL")]
    pub console_url: Option<String>,

    /// OpenID client of the console at the issuer (authorization code flow with PKCE).
    #[arg(
        long,
        env = "SERRE_API_CONSOLE_CLIENT_ID",
        default_value = "serre-console"
    )]
    pub console_client_id: String,

    /// File holding the console client's secret, for a confidential client (unset: a
    /// public client, PKCE only).
    #[arg(long, env = "SERRE_API_CONSOLE_CLIENT_SECRET_FILE")]
    pub console_client_secret_file: Option<std::path::PathBuf>,

    /// Longest a console session lasts (the access token's own expiry ends it earlier).
    #[arg(long, env = "SERRE_API_CONSOLE_SESSION_TTL", default_value = "8h", value_parser = parse_duration)]
    pub console_session_ttl: Duration,
}
