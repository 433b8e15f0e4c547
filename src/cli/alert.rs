//! `workq alert add | ls | rm | check`: alerts on a queue's SLA, deadline, exceptions and
//! workers (issue 9). `check` is one pass, for cron on an embedded file.

use super::output::{self, say, tell, Col, Failure, Out};
use super::AlertCmd;
use crate::alert::{NewAlert, Target};
use crate::alerting::{self, Deliveries, Retry};
use crate::backend::Backend;

pub async fn run(store: &dyn Backend, c: AlertCmd, out: &Out) -> Result<(), Failure> {
    match c {
        AlertCmd::Add {
            name,
            queue,
            when,
            run,
            webhook,
        } => {
            let target = match (run, webhook) {
                (Some(c), None) => Target::Run(c),
                (None, Some(u)) => Target::Webhook(u),
                _ => return Err(Failure::usage("give one of --run CMD or --webhook URL")),
            };
            let a = store
                .add_alert(NewAlert {
                    name,
                    queue,
                    rule: when,
                    target,
                })
                .await?;
            if out.json {
                return out.json(&a);
            }
            say!("alert '{}' on queue '{}' when {}", a.name, a.queue, a.rule);
            Ok(())
        }
        AlertCmd::Ls => {
            let all = store.alerts().await?;
            if out.json {
                return out.json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|a| {
                    let target = match &a.target {
                        Target::Run(c) => format!("run: {c}"),
                        Target::Webhook(u) => format!("webhook: {u}"),
                    };
                    vec![
                        a.name.clone(),
                        a.queue.clone(),
                        a.rule.clone(),
                        a.state.as_str().into(),
                        output::opt_time(a.changed_at),
                        target,
                    ]
                })
                .collect();
            output::table(
                &[
                    Col::left("NAME"),
                    Col::left("QUEUE"),
                    Col::left("RULE"),
                    Col::left("STATE"),
                    Col::left("CHANGED"),
                    Col::left("SENDS TO"),
                ],
                &rows,
            )
        }
        AlertCmd::Rm { name } => {
            let a = store.remove_alert(&name).await?;
            if out.json {
                return out.json(&a);
            }
            say!("alert '{}' removed", a.name);
            Ok(())
        }
        AlertCmd::Check { attempts, backoff } => {
            let deliveries = Deliveries::start(Retry {
                attempts: attempts.max(1),
                first: backoff,
            });
            let now = chrono::Utc::now();
            let fired = alerting::check_and_deliver(store, now, &deliveries).await;
            // Deliver what was won even if a later alert failed to check.
            deliveries.finish().await;
            let fired = fired?;
            if out.json {
                let bodies: Vec<_> = fired.iter().map(|(_, b)| b).collect();
                return out.json(&bodies);
            }
            for (_, b) in &fired {
                say!("alert '{}' {}", b.alert, b.state.as_str());
            }
            if fired.is_empty() {
                tell!("no alert changed");
            }
            Ok(())
        }
    }
}
