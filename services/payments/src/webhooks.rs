//! Stripe's events, after the edge verified their signature: each raw event is stored, then
//! processed once per event id under a lock (a re-delivered or concurrent duplicate has no second
//! effect). Processing never trusts the event's copy of the object: it reads the object's current
//! state from Stripe, so events arriving out of order converge on the latest truth.

use era_proto::payments::v1 as pb;
use serde::Deserialize;

use crate::{
    app::App,
    charges::checked,
    error::{Error, Result},
    stripe::types,
};

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: serde_json::Value,
}

pub(crate) async fn ingest(app: &App, req: &pb::IngestStripeEventRequest) -> Result<pb::IngestStripeEventResponse> {
    let event: Event =
        serde_json::from_slice(&req.payload).map_err(|_| Error::field("payload", "is not a Stripe event"))?;
    if event.id != req.event_id || !event.id.starts_with("evt_") {
        return Err(Error::field("event_id", "does not match the event in the payload"));
    }
    let _lock = app.store.lock(&format!("event:{}", event.id)).await?;
    if !app.store.record_event(&event.id, &event.kind, &req.payload).await? {
        return Ok(pb::IngestStripeEventResponse {
            event_type: event.kind,
            processed: false,
        });
    }
    let object_id = event.data.object["id"].as_str().unwrap_or_default().to_owned();
    match event.kind.as_str() {
        k if k.starts_with("payment_intent.") => {
            let hint = event.data.object["metadata"]["charge_id"].as_str();
            payment_intent(app, &object_id, hint).await?
        }
        "charge.refunded" | "charge.refund.updated" | "charge.succeeded" | "charge.failed" => {
            let pi = event.data.object["payment_intent"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !pi.is_empty() {
                payment_intent(app, &pi, None).await?;
            }
            if let Some(refunds) = event.data.object["refunds"]["data"].as_array() {
                for r in refunds.iter().filter_map(|r| r["id"].as_str()) {
                    refund(app, r).await?;
                }
            }
        }
        k if k.starts_with("refund.") => refund(app, &object_id).await?,
        k if k.starts_with("setup_intent.") => setup_intent(app, &object_id).await?,
        // Other events are kept for the record; nothing of ours follows from them.
        _ => {}
    }
    app.store.mark_event_processed(&event.id).await?;
    Ok(pb::IngestStripeEventResponse {
        event_type: event.kind,
        processed: true,
    })
}

/// A charge follows its PaymentIntent's current status (a terminal status is never undone). A
/// PaymentIntent whose id the charge never recorded (the service stopped between Stripe's answer
/// and its own commit) is found by the charge id it carries in its metadata, so the event settles
/// the charge even when the key is too old to send again.
async fn payment_intent(app: &App, id: &str, charge_hint: Option<&str>) -> Result<()> {
    let (charge, by_hint) = match app.store.charge_by_payment_intent(id).await? {
        Some(c) => (c, false),
        None => {
            let unrecorded = match charge_hint.and_then(|c| c.parse().ok()) {
                Some(charge_id) => app
                    .store
                    .charge_by_id(charge_id)
                    .await?
                    .filter(|c| c.charge.stripe_payment_intent_id.is_empty()),
                None => None,
            };
            // Otherwise not one of ours.
            let Some(c) = unrecorded else { return Ok(()) };
            (c, true)
        }
    };
    let pi: types::PaymentIntent = app
        .stripe
        .get(&format!("/v1/payment_intents/{id}"), &Vec::new())
        .await?;
    // Stripe's own copy, not the event's, says whose it is.
    if pi.id != id || (by_hint && pi.metadata.get("charge_id") != Some(&charge.charge.id)) {
        return Ok(());
    }
    app.store.settle_charge(charge.id, &checked(&charge, &pi)?).await
}

async fn refund(app: &App, id: &str) -> Result<()> {
    let Some(row) = app.store.refund_by_stripe_id(id).await? else {
        return Ok(());
    };
    // The refund's own lock, as callers and the resume worker take it, so their reads and ours are
    // recorded one at a time.
    let _lock = app.store.lock(&format!("refund:{}", row.refund.charge_id)).await?;
    let r: types::Refund = app.stripe.get(&format!("/v1/refunds/{id}"), &Vec::new()).await?;
    let status = crate::charges::refund_status_of(&r);
    app.store
        .settle_refund(row.id, status, Some(&r.id), r.failure_reason.as_deref())
        .await
}

/// A SetupIntent that succeeded in the browser becomes the patient's hold even if the intake page
/// never called SavePaymentMethod; one that failed marks its hold failed.
async fn setup_intent(app: &App, id: &str) -> Result<()> {
    let Some((patient, customer)) = app.store.hold_owner(id).await? else {
        return Ok(());
    };
    let si: types::SetupIntent = app.stripe.get(&format!("/v1/setup_intents/{id}"), &Vec::new()).await?;
    match si.status.as_str() {
        "succeeded" => {
            let Some(pm_id) = si.payment_method else { return Ok(()) };
            crate::holds::activate(app, &patient, &customer, id, &pm_id).await?;
        }
        "requires_action" => app.store.set_hold_status(id, "requires_action").await?,
        "canceled" => app.store.set_hold_status(id, "failed").await?,
        "requires_payment_method" if si.last_setup_error.is_some() => app.store.set_hold_status(id, "failed").await?,
        _ => {}
    }
    Ok(())
}
