//! Tenants and principals, made with the server administrator's token: the `principal` mode
//! the scripts use to get a writer for their tenant, and the principals of `evidence-setup`.

use anyhow::{Context, Result, bail, ensure};
use custody_api::{CreatePrincipal, CreatedPrincipal};
use reqwest::{Client, StatusCode};

use crate::http::{Auth, Token, client, excerpt};

/// Options of `principal`.
#[derive(Debug, Clone, clap::Args)]
pub struct PrincipalArgs {
    /// Base URL of the custody server.
    #[arg(long)]
    pub url: String,
    /// The server administrator's token (`custody serve --bootstrap-token-file`).
    #[command(flatten)]
    pub auth: Auth,
    /// Tenant of the principal; created first (an existing one is fine).
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    /// Display name of the principal.
    #[arg(long, default_value = "bench-writer")]
    pub name: String,
    /// `service` or `user`.
    #[arg(long, default_value = "service")]
    pub kind: String,
    /// Roles, comma-separated: any of writer, approver, auditor, admin.
    #[arg(long, value_delimiter = ',', default_value = "writer")]
    pub roles: Vec<String>,
}

/// A principal made here, with its first token.
#[derive(Debug, Clone)]
pub struct Member {
    /// Principal id: the `actor.id` custody gives its entries.
    pub id: String,
    /// Its bearer token.
    pub token: Token,
}

/// Creates the tenant, accepting one that already exists.
pub async fn create_tenant(admin: &Client, base: &str, tenant: &str) -> Result<()> {
    let resp = admin
        .post(format!("{base}/v1/tenants"))
        .json(&serde_json::json!({ "name": tenant }))
        .send()
        .await
        .with_context(|| format!("POST {base}/v1/tenants"))?;
    let status = resp.status();
    if status != StatusCode::CREATED && status != StatusCode::CONFLICT {
        bail!(
            "creating tenant {tenant}: HTTP {status}: {}",
            excerpt(&resp.bytes().await?)
        );
    }
    Ok(())
}

/// Creates a principal of `tenant` with `roles` and returns its id and first token.
pub async fn create_principal(
    admin: &Client,
    base: &str,
    tenant: &str,
    kind: &str,
    name: &str,
    roles: &[&str],
) -> Result<Member> {
    let resp = admin
        .post(format!("{base}/v1/tenants/{tenant}/principals"))
        .json(&CreatePrincipal {
            kind: kind.into(),
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_in_days: None,
        })
        .send()
        .await
        .with_context(|| format!("POST {base}/v1/tenants/{tenant}/principals"))?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    ensure!(
        status == StatusCode::CREATED,
        "creating principal {name} in {tenant}: HTTP {status}: {}",
        excerpt(&bytes)
    );
    let made: CreatedPrincipal = serde_json::from_slice(&bytes)?;
    Ok(Member {
        id: made.principal.id,
        token: Token::new(made.token.token),
    })
}

/// `principal`: creates the tenant if missing and a principal with the given roles; returns
/// it for its token to be printed.
pub async fn principal(a: &PrincipalArgs) -> Result<Member> {
    let admin = client(1, Some(&a.auth.token))?;
    let base = a.url.trim_end_matches('/');
    create_tenant(&admin, base, &a.tenant).await?;
    let roles: Vec<&str> = a.roles.iter().map(String::as_str).collect();
    create_principal(&admin, base, &a.tenant, &a.kind, &a.name, &roles).await
}
