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
/// The longest a vendor may make us wait before the next attempt (a larger `Retry-After` is taken
/// as this).
const MAX_VENDOR_WAIT: Duration = Duration::from_secs(24 * 60 * 60);
/// How long SendGrid's Email Activity may take to show a message: before that, "not found" after a
/// lost answer means "cannot tell yet".
const ACTIVITY_LAG: chrono::Duration = chrono::Duration::minutes(10);

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

/// Keeps a held message's lease alive; pends for ever once the lease is lost (the fence then
/// refuses the holder's writes).
async fn heartbeat(app: &App, m: &MessageRow) {
    loop {
        tokio::time::sleep(app.lease / 3).await;
        match app.store.heartbeat(m.id, m.lease_generation, app.lease).await {
            Ok(true) => {}
            Ok(false) => std::future::pending::<()>().await,
            Err(e) => tracing::warn!(message = %m.id, error = %e, "an outbox heartbeat failed"),
        }
    }
}

/// Delivers one claimed message while a heartbeat keeps its lease. Both run in this one future, so
/// however delivery ends (a panic included) the heartbeat ends with it and the lease can run out.
async fn deliver_held(app: &Shared, m: MessageRow) {
    let result = tokio::select! {
        r = deliver(app, &m) => r,
        () = heartbeat(app, &m) => unreachable!("the heartbeat never finishes"),
    };
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

/// Ends a message without calling its vendor.
async fn give_up(app: &App, m: &MessageRow, status: &str, why: &str) -> Result<()> {
    app.store
        .finish(
            m,
            Finish {
                status,
                attempt: None,
                next_attempt_at: None,
                vendor_message_id: None,
                last_error: Some(why),
                still_uncertain: m.uncertain_since.is_some(),
            },
        )
        .await?;
    tracing::warn!(message = %m.id, channel = m.channel.code(), why, "message not sent");
    Ok(())
}

async fn deliver(app: &App, m: &MessageRow) -> Result<()> {
    // Attempts whose workers stopped mid-delivery count too (the claim recorded them).
    if m.attempt_count as usize >= app.schedule.len() {
        return give_up(app, m, "dead_lettered", "every attempt was used up").await;
    }
    // A sign-in code or link that can no longer be used is not worth sending.
    if let Some(life) = crate::logins::lifetime(m.kind) {
        if Utc::now() - m.created_at > life {
            return give_up(app, m, "dead_lettered", "it expired before it could be delivered").await;
        }
    }
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
            return give_up(app, m, "skipped", &why).await;
        }
        Err(Error::Unavailable(_, why)) => {
            let outcome = Outcome::Retry {
                http_status: 0,
                error: why,
                after: None,
            };
            return record(app, m, outcome, false).await;
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
        // SendGrid's activity shows a message minutes after it was sent: a miss before then proves
        // nothing, so the message waits (a code or link, short-lived, is sent again instead).
        let found = match found {
            Found::NotSent
                if matches!(rendered, Rendered::Email { .. })
                    && Utc::now() - since < ACTIVITY_LAG
                    && crate::logins::lifetime(m.kind).is_none() =>
            {
                let at = since + ACTIVITY_LAG;
                app.store
                    .finish(
                        m,
                        Finish {
                            status: "pending",
                            attempt: None,
                            next_attempt_at: Some(at),
                            vendor_message_id: None,
                            last_error: Some("waiting to learn whether an earlier attempt went out"),
                            still_uncertain: true,
                        },
                    )
                    .await?;
                return Ok(());
            }
            other => other,
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
    record(app, m, outcome, true).await
}

/// Records an attempt's outcome and schedules what follows. `reached_vendor` is false when the
/// attempt failed before the vendor was called: a "possibly sent" mark from an earlier attempt
/// then stays.
async fn record(app: &App, m: &MessageRow, outcome: Outcome, reached_vendor: bool) -> Result<()> {
    let attempt = m.attempt_count + 1;
    // The time of attempt `attempt + 1`, or `None` after the last.
    let next = |after: Option<Duration>| -> Option<chrono::DateTime<Utc>> {
        let planned = *app.schedule.get(attempt as usize)?;
        let wait = after.map_or(planned, |a| a.max(planned)).min(MAX_VENDOR_WAIT);
        Utc::now().checked_add_signed(chrono::Duration::from_std(wait).ok()?)
    };
    let kept = !reached_vendor && m.uncertain_since.is_some();
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
                still_uncertain: kept,
            }
        }
        Outcome::Permanent { http_status, error } => Finish {
            status: "dead_lettered",
            attempt: Some(("permanent_error", i32::from(*http_status), error)),
            next_attempt_at: None,
            vendor_message_id: None,
            last_error: Some(error),
            still_uncertain: kept,
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
