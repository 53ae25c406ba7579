//! The outbox worker: takes due messages (`FOR UPDATE SKIP LOCKED`, a lease with heartbeats, the
//! lease generation as a fence), resolves the address, renders the template and hands the message
//! to its vendor, then records the attempt and what comes next: sent, a retry on the schedule (or
//! when the vendor says), or the dead letter after the last attempt. Channels are separate
//! messages, so one failing never holds back another.
//!
//! Neither vendor has an idempotency key. Right before a call the message is marked possibly sent;
//! a worker that finds that mark (its predecessor stopped mid-call, or the answer was lost) asks the
//! vendor whether the message went out before sending again. When the vendor cannot say, it sends
//! again: a duplicate is better than a message never sent.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::{
    app::{App, Contact, Shared},
    error::{Error, Result},
    outbox::{open, Payload},
    store::{Finish, MessageRow},
    templates::{self, Channel, Rendered},
    vendors::{Email, Found, Outcome, Sms},
};

/// Messages one claim takes.
const BATCH: i64 = 16;

/// Runs until the task is dropped. Each batch's messages are delivered concurrently.
pub(crate) async fn run(app: Shared) {
    let owner = format!("worker-{}", Uuid::new_v4());
    loop {
        let claimed = match app.store.claim(&owner, app.lease, BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming outbox messages failed");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = app.wake.notified() => {}
                _ = tokio::time::sleep(app.poll) => {}
            }
            continue;
        }
        let work = claimed.into_iter().map(|m| {
            let app = app.clone();
            // Each delivery in its own task: a panic in one is contained to that message, whose
            // lease then runs out and lets another attempt take it.
            tokio::spawn(async move { deliver_held(&app, m).await })
        });
        for done in futures::future::join_all(work).await {
            if let Err(e) = done {
                tracing::error!(error = %e, "an outbox delivery panicked");
            }
        }
    }
}

/// Delivers one claimed message while a heartbeat keeps its lease.
async fn deliver_held(app: &Shared, m: MessageRow) {
    let heartbeat = {
        let app = app.clone();
        let (id, generation) = (m.id, m.lease_generation);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(app.lease / 3).await;
                match app.store.heartbeat(id, generation, app.lease).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!(message = %id, error = %e, "an outbox heartbeat failed"),
                }
            }
        })
    };
    let result = deliver(app, &m).await;
    heartbeat.abort();
    match result {
        Ok(()) => {}
        // A payload that no longer opens will not open next time either.
        Err(Error::Integrity) => {
            let _ = app
                .store
                .finish(
                    &m,
                    Finish {
                        status: "dead_lettered",
                        attempt: Some(("permanent_error", 0, "the stored message failed its integrity check")),
                        next_attempt_at: None,
                        vendor_message_id: None,
                        last_error: Some("the stored message failed its integrity check"),
                        still_uncertain: false,
                    },
                )
                .await;
        }
        // Anything else (the database, say) leaves the message held: the lease runs out and an
        // attempt comes again.
        Err(e) => tracing::warn!(message = %m.id, error = %e, "an outbox delivery stopped; its lease will expire"),
    }
}

/// Where the message goes: the request's address or the patient's chart. `None` when there is
/// none for the channel.
async fn address(app: &App, m: &MessageRow, p: &Payload) -> Result<Option<(String, Contact)>> {
    let given = match m.channel {
        Channel::Email => &p.email,
        Channel::Sms => &p.phone,
        Channel::Portal => return Ok(None),
    };
    let mut contact = Contact {
        first_name: p.name.split_whitespace().next().unwrap_or_default().to_owned(),
        full_name: p.name.clone(),
        ..Default::default()
    };
    if !given.is_empty() {
        return Ok(Some((given.clone(), contact)));
    }
    if m.patient.is_empty() {
        return Ok(None);
    }
    let Some(chart) = app.contact(&m.patient).await? else {
        return Ok(None);
    };
    let to = match m.channel {
        Channel::Email => chart.email.clone(),
        _ => chart.phone.clone(),
    };
    if contact.full_name.is_empty() {
        contact = chart;
    }
    let usable = match m.channel {
        Channel::Email => templates::is_email(&to),
        _ => templates::is_e164(&to),
    };
    Ok(usable.then_some((to, contact)))
}

async fn deliver(app: &App, m: &MessageRow) -> Result<()> {
    let n = app
        .store
        .notification(m.notification_id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("message {} has no notification", m.id)))?;
    let payload = open(app, &n)?;
    if m.channel == Channel::Portal {
        return deliver_portal(app, m, &payload).await;
    }
    let (to, contact) = match address(app, m, &payload).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            let why = format!("no {} address for the recipient", m.channel.code());
            app.store
                .finish(
                    m,
                    Finish {
                        status: "skipped",
                        attempt: None,
                        next_attempt_at: None,
                        vendor_message_id: None,
                        last_error: Some(&why),
                        still_uncertain: false,
                    },
                )
                .await?;
            return Ok(());
        }
        Err(Error::Unavailable(_, why)) => {
            let outcome = Outcome::Retry {
                http_status: 0,
                error: why,
                after: None,
            };
            return record(app, m, outcome).await;
        }
        Err(e) => return Err(e),
    };
    let mut vars = payload.variables.clone();
    if !vars.contains_key("first_name") && !contact.first_name.is_empty() {
        vars.insert("first_name".into(), contact.first_name.clone());
    }
    let rendered = templates::render(m.kind, m.channel, &vars);

    // An earlier attempt may have gone out: ask before sending again.
    if let Some(since) = m.uncertain_since {
        let found = match &rendered {
            Rendered::Email { .. } => app.email.find(&m.id.to_string()).await,
            Rendered::Sms { body } => {
                app.sms
                    .find(
                        &Sms {
                            to: to.clone(),
                            body: body.clone(),
                        },
                        since,
                    )
                    .await
            }
            Rendered::Portal { .. } => Found::NotSent,
        };
        match found {
            Found::Sent { vendor_id } => {
                app.store
                    .finish(
                        m,
                        Finish {
                            status: "sent",
                            attempt: Some(("found_sent", 0, "an earlier attempt had gone out")),
                            next_attempt_at: None,
                            vendor_message_id: Some(&vendor_id),
                            last_error: None,
                            still_uncertain: false,
                        },
                    )
                    .await?;
                return Ok(());
            }
            Found::NotSent => {}
            Found::Unknown { error } => {
                tracing::warn!(message = %m.id, error, "cannot tell whether an earlier attempt went out; sending again");
            }
        }
    }

    if !app
        .store
        .about_to_send(m.id, m.lease_generation, &templates::mask(&to))
        .await?
    {
        tracing::info!(message = %m.id, "lost the lease before sending; another worker has it");
        return Ok(());
    }
    let outcome = match rendered {
        Rendered::Email { subject, text, html } => {
            app.email
                .send(&Email {
                    to,
                    to_name: contact.full_name,
                    subject,
                    text,
                    html,
                    message_id: m.id.to_string(),
                })
                .await
        }
        Rendered::Sms { body } => app.sms.send(&Sms { to, body }).await,
        Rendered::Portal { .. } => unreachable!("portal messages return above"),
    };
    record(app, m, outcome).await
}

/// Records an attempt's outcome and schedules what follows.
async fn record(app: &App, m: &MessageRow, outcome: Outcome) -> Result<()> {
    let attempt = m.attempt_count + 1;
    // The delay before attempt `attempt + 1`, or `None` after the last.
    let next = |after: Option<Duration>| -> Option<chrono::DateTime<Utc>> {
        let planned = *app.schedule.get(attempt as usize)?;
        let wait = after.map_or(planned, |a| a.max(planned));
        Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default())
    };
    let finish = match &outcome {
        Outcome::Sent { vendor_id, http_status } => Finish {
            status: "sent",
            attempt: Some(("sent", i32::from(*http_status), "")),
            next_attempt_at: None,
            vendor_message_id: Some(vendor_id),
            last_error: None,
            still_uncertain: false,
        },
        Outcome::Retry {
            http_status,
            error,
            after,
        } => {
            let at = next(*after);
            Finish {
                status: if at.is_some() { "pending" } else { "dead_lettered" },
                attempt: Some(("retryable_error", i32::from(*http_status), error)),
                next_attempt_at: at,
                vendor_message_id: None,
                last_error: Some(error),
                still_uncertain: false,
            }
        }
        Outcome::Permanent { http_status, error } => Finish {
            status: "dead_lettered",
            attempt: Some(("permanent_error", i32::from(*http_status), error)),
            next_attempt_at: None,
            vendor_message_id: None,
            last_error: Some(error),
            still_uncertain: false,
        },
        Outcome::Uncertain { error } => {
            let at = next(None);
            Finish {
                status: if at.is_some() { "pending" } else { "dead_lettered" },
                attempt: Some(("timeout", 0, error)),
                next_attempt_at: at,
                vendor_message_id: None,
                last_error: Some(error),
                still_uncertain: true,
            }
        }
    };
    let status = finish.status;
    if !app.store.finish(m, finish).await? {
        tracing::warn!(message = %m.id, "the lease ran out during the attempt; its outcome was not recorded");
        return Ok(());
    }
    match status {
        "sent" => tracing::info!(message = %m.id, channel = m.channel.code(), attempt, "message sent"),
        "dead_lettered" => {
            tracing::warn!(message = %m.id, channel = m.channel.code(), attempt, "message dead-lettered")
        }
        _ => {
            tracing::info!(message = %m.id, channel = m.channel.code(), attempt, "message attempt failed; retrying later")
        }
    }
    Ok(())
}

/// The portal channel: the notification the patient sees, written with the message's status.
async fn deliver_portal(app: &App, m: &MessageRow, payload: &Payload) -> Result<()> {
    let Rendered::Portal { title, body, link } = templates::render(m.kind, Channel::Portal, &payload.variables) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "a portal template rendered as another channel"
        )));
    };
    let id = Uuid::new_v4();
    let plain =
        serde_json::to_vec(&crate::portal::PortalText { title, body, link }).map_err(|e| Error::Internal(e.into()))?;
    let sealed = app
        .keys
        .seal(id, &crate::portal::context(&m.patient, m.kind), &plain)
        .map_err(Error::Internal)?;
    if !app.store.deliver_portal(m, &sealed, id).await? {
        tracing::info!(message = %m.id, "lost the lease before writing the portal notification");
    }
    Ok(())
}
