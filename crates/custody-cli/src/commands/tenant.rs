//! `custody tenant`: create a tenant (and its three logs) or list them.

use clap::Subcommand;

use crate::output::print;
use crate::settings::Settings;

/// Tenant commands.
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its governance, inference and access logs.
    Create {
        /// Tenant name: a-z, 0-9 and '-', at most 63.
        name: String,
    },
    /// List tenants.
    List,
}

/// Runs a tenant command.
pub async fn run(command: TenantCommand, settings: &Settings) -> anyhow::Result<i32> {
    let client = settings.client()?;
    match command {
        TenantCommand::Create { name } => {
            let t = client.create_tenant(&name).await?;
            print(settings.json, &t, || {
                let mut s = format!("created tenant {}", t.name);
                for l in &t.logs {
                    s.push_str(&format!("\n  {:<10} {}", l.name, l.verifier_key));
                }
                s
            })?;
        }
        TenantCommand::List => {
            let t = client.tenants().await?;
            print(settings.json, &t, || t.tenants.join("\n"))?;
        }
    }
    Ok(0)
}
