//! `serre login`, `serre logout`, `serre whoami`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use super::Ctx;
use crate::auth::device;
use crate::auth::store::Settings;
use crate::error::Failure;
use crate::output::{self, field, pairs};

/// The public client `serre` signs in as, unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "serre-cli";

#[derive(Args)]
pub struct Login {
    /// The OpenID provider (e.g. https://auth.metropolegrandparis.fr/realms/mgp); default:
    /// the last one signed in to.
    #[arg(long, env = "SERRE_ISSUER")]
    issuer: Option<String>,
    /// The provider's public client for `serre` (device flow, no secret).
    #[arg(long, env = "SERRE_CLIENT_ID")]
    client_id: Option<String>,
    /// Scopes asked for; `offline_access` lets `serre` refresh its token.
    #[arg(long, default_value = "openid offline_access")]
    scope: String,
    /// A resource indicator (RFC 8707) for providers that mint the gateway's audience from
    /// it.
    #[arg(long)]
    resource: Option<String>,
}

impl Login {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let saved = ctx.store.settings()?;
        let issuer = self.issuer.or(saved.issuer.clone()).ok_or_else(|| {
            Failure::Usage("say which OpenID provider: serre login --issuer URL".into())
        })?;
        let issuer = issuer.trim_end_matches('/').to_owned();
        let client_id = self
            .client_id
            .or(saved
                .client_id
                .clone()
                .filter(|_| saved.issuer.as_deref() == Some(&issuer)))
            .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned());
        let discovery = device::discover(&ctx.http, &issuer).await?;
        let auth = device::authorize(
            &ctx.http,
            &discovery,
            &client_id,
            &self.scope,
            self.resource.as_deref(),
        )
        .await?;
        let mut err = std::io::stderr();
        match &auth.verification_uri_complete {
            Some(full) => writeln!(
                err,
                "To sign in, open {full}\n(or open {} and enter the code {})",
                auth.verification_uri, auth.user_code
            )?,
            None => writeln!(
                err,
                "To sign in, open {} and enter the code {}",
                auth.verification_uri, auth.user_code
            )?,
        }
        writeln!(
            err,
            "Waiting for the sign-in (the code expires in {} s)…",
            auth.expires_in
        )?;
        let tokens = device::poll(&ctx.http, &discovery, &client_id, &auth).await?;
        ctx.store.save_tokens(&tokens)?;
        let gateway = ctx
            .global
            .gateway
            .clone()
            .filter(|g| !g.trim().is_empty())
            .or(saved.gateway);
        ctx.store.save_settings(&Settings {
            issuer: Some(issuer.clone()),
            client_id: Some(client_id),
            gateway: gateway.clone(),
        })?;
        let refresh = if tokens.refresh_token.is_some() {
            "refreshed when it expires"
        } else {
            "no refresh token: sign in again when it expires"
        };
        eprintln!(
            "Signed in to {issuer} ({refresh}); tokens kept in {}.",
            ctx.store.dir().display()
        );
        if gateway.is_some() {
            return whoami(ctx).await;
        }
        eprintln!("No gateway yet: pass --gateway URL (or set SERRE_GATEWAY).");
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn logout(ctx: &Ctx) -> Result<ExitCode> {
    let settings = ctx.store.settings()?;
    match settings.issuer {
        Some(issuer) if ctx.store.remove_tokens(&issuer)? => {
            eprintln!("Signed out of {issuer}.");
        }
        _ => eprintln!("Not signed in."),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(ctx: &Ctx) -> Result<ExitCode> {
    let me = ctx.client().await?.get(&["me"], &[]).await?;
    output::emit(ctx.global.output, &me, |v: &Value| {
        pairs(&[
            ("subject", field(v, "/subject")),
            ("issuer", field(v, "/issuer")),
            ("organisation", field(v, "/organisation")),
            ("groups", field(v, "/groups")),
            ("metropole admin", field(v, "/metropoleAdmin")),
            ("admin of", field(v, "/adminOf")),
            ("member of", field(v, "/memberOf")),
        ])
    });
    Ok(ExitCode::SUCCESS)
}
