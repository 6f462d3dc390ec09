//! `coldpatch token`: API tokens for the server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use coldpatch_catalog::Catalog;

use crate::args::TokenCommand;
use crate::output;

pub fn token(catalog: &Catalog, command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Create { role, name, json } => {
            let role = coldpatch_catalog::Role::parse(&role).context("unknown role")?;
            let (rec, secret) = catalog.create_token(&name, role)?;
            if json {
                output::json(&serde_json::json!({"token": rec, "secret": secret}))?;
            } else {
                eprintln!(
                    "token {} ({}, {}): the secret below is shown this once",
                    rec.id,
                    rec.name,
                    rec.role.as_str()
                );
                crate::outln!("{secret}")?;
            }
        }
        TokenCommand::List { json } => {
            let list: Vec<_> = catalog.tokens()?.iter().map(|t| t.info()).collect();
            output::list(json, &list, &["ID", "NAME", "ROLE", "CREATED"], |t| {
                vec![
                    t.id.clone(),
                    t.name.clone(),
                    t.role.as_str().to_string(),
                    output::time(t.created),
                ]
            })?;
        }
        TokenCommand::Revoke { id } => {
            let t = catalog.revoke_token(&id)?;
            crate::outln!("token {} ({}) revoked", t.id, t.name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
