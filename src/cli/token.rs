//! `workq token create | ls | revoke`: the bearer tokens of `workq serve`.

use super::output::{self, say, tell, Col, Failure, Out};
use super::TokenCmd;
use crate::backend::Backend;
use crate::token::Role;

pub async fn run(store: &dyn Backend, c: TokenCmd, out: &Out) -> Result<(), Failure> {
    match c {
        TokenCmd::Create { name, role } => {
            let role: Role = role
                .parse()
                .map_err(|e: String| Failure::invalid(format!("--role: {e}")))?;
            let t = store.create_token(&name, role).await?;
            if out.json {
                return out.json(&t);
            }
            // The secret alone on stdout, so `T=$(workq token create …)` holds just it.
            say!("{}", t.token);
            tell!(
                "token '{}' ({role}) made; it is shown only now. Send it as \
                 `Authorization: Bearer TOKEN`, or run workq --remote URL --token TOKEN …",
                name
            );
            Ok(())
        }
        TokenCmd::Ls => {
            let all = store.tokens().await?;
            if out.json {
                return out.json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.role.to_string(),
                        output::time(t.created_at),
                        output::opt_time(t.revoked_at),
                    ]
                })
                .collect();
            output::table(
                &[
                    Col::left("NAME"),
                    Col::left("ROLE"),
                    Col::left("CREATED"),
                    Col::left("REVOKED"),
                ],
                &rows,
            )
        }
        TokenCmd::Revoke { name } => {
            let t = store.revoke_token(&name).await?;
            if out.json {
                return out.json(&t);
            }
            say!("token '{}' revoked: it is refused from now on", t.name);
            Ok(())
        }
    }
}
