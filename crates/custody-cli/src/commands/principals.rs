//! `custody principal`, `custody token` and `custody whoami`: who may call custody, with
//! which roles.

use clap::Subcommand;
use custody_api as api;

use crate::output::print;
use crate::settings::Settings;

/// Principal commands.
#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Create a principal and print its first token (shown once).
    Create {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Display name (kept out of the logs).
        #[arg(long)]
        name: String,
        /// `user` or `service`.
        #[arg(long, default_value = "user")]
        kind: String,
        /// A role: admin, writer, approver or auditor. Repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime of the token in days (1-3650, default 90).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's principals.
    List {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
    },
}

/// Token commands.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue another token to a principal (shown once).
    Issue {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Principal id.
        principal: String,
        /// Lifetime in days (1-3650, default 90).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List a principal's tokens (never their secrets).
    List {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Principal id.
        principal: String,
    },
    /// Revoke a token at once, by its public id.
    Revoke {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// The token's public id (the 20 hex digits after cst_). Its own argument id: the
        /// global `--token` (the caller's credential) is another value.
        #[arg(id = "token_id", value_name = "TOKEN_ID")]
        token: String,
    },
}

fn token_line(t: &api::TokenInfo) -> String {
    format!(
        "{}  principal {}  expires {}{}",
        t.id,
        t.principal,
        t.expires,
        t.revoked
            .as_deref()
            .map(|r| format!("  revoked {r}"))
            .unwrap_or_default()
    )
}

/// Runs `custody whoami`.
pub async fn whoami(settings: &Settings) -> anyhow::Result<i32> {
    let w = settings.client()?.whoami().await?;
    print(settings.json, &w, || {
        format!(
            "{} ({}) in {} with roles {}; token {}",
            w.principal,
            w.kind,
            w.tenant
                .as_deref()
                .unwrap_or("every tenant (server administrator)"),
            w.roles.join(", "),
            w.token
        )
    })?;
    Ok(0)
}

/// Runs a principal command.
pub async fn principal(c: PrincipalCommand, settings: &Settings) -> anyhow::Result<i32> {
    let (client, json) = (settings.client()?, settings.json);
    match c {
        PrincipalCommand::Create {
            tenant,
            name,
            kind,
            roles,
            expires_in_days,
        } => {
            let made = client
                .create_principal(
                    &tenant,
                    &api::CreatePrincipal {
                        kind,
                        name,
                        roles,
                        expires_in_days,
                    },
                )
                .await?;
            print(json, &made, || {
                format!(
                    "created principal {} ({}, roles {})\ntoken (shown once; store it now): {}\nexpires {}",
                    made.principal.id,
                    made.principal.kind,
                    made.principal.roles.join(", "),
                    made.token.token,
                    made.token.info.expires
                )
            })?;
        }
        PrincipalCommand::List { tenant } => {
            let list = client.principals(&tenant).await?;
            print(json, &list, || {
                list.principals
                    .iter()
                    .map(|p| {
                        format!(
                            "{}  {:<7}  {:<28}  {}",
                            p.id,
                            p.kind,
                            p.roles.join(","),
                            p.name
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
    }
    Ok(0)
}

/// Runs a token command.
pub async fn token(c: TokenCommand, settings: &Settings) -> anyhow::Result<i32> {
    let (client, json) = (settings.client()?, settings.json);
    match c {
        TokenCommand::Issue {
            tenant,
            principal,
            expires_in_days,
        } => {
            let t = client
                .issue_token(&tenant, &principal, expires_in_days)
                .await?;
            print(json, &t, || {
                format!(
                    "token (shown once; store it now): {}\nexpires {}",
                    t.token, t.info.expires
                )
            })?;
        }
        TokenCommand::List { tenant, principal } => {
            let list = client.tokens(&tenant, &principal).await?;
            print(json, &list, || {
                list.tokens
                    .iter()
                    .map(token_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        TokenCommand::Revoke { tenant, token } => {
            let t = client.revoke_token(&tenant, &token).await?;
            print(json, &t, || format!("revoked {}", token_line(&t)))?;
        }
    }
    Ok(0)
}
