//! Off-session charges of the saved card, exactly once per reference, and refunds.
//!
//! A charge is written (status `pending`) before Stripe hears of it, and its id is Stripe's
//! Idempotency-Key. Whatever happens next (a crash, a lost answer, twenty concurrent callers), every
//! attempt for the reference sends that same key, so Stripe creates one PaymentIntent and replays
//! its result to the others. Declines and `authentication_required` are terminal answers, recorded
//! with the reason and never retried here: the patient must act.

use era_kit::{error::FieldViolation, keylock::KeyLock};
use era_proto::{common::v1::Actor, payments::v1 as pb};

use crate::{
    app::{check_id, check_key, App},
    error::{Error, Result},
    store::{refund_reason_code, Actors, ChargeOutcome, ChargeRow, NewCharge, NewRefund, RefundRow},
    stripe::{types, Params, StripeError, StripeErrorKind},
};

/// The most one charge may be: a guard against a misplaced decimal point (cents, not dollars).
pub(crate) const MAX_CHARGE_CENTS: i64 = 500_000;
/// Stripe's smallest USD charge.
pub(crate) const MIN_CHARGE_CENTS: i64 = 50;
/// Stripe forgets idempotency keys after 24 hours: past this age an unfinished charge or refund is
/// not sent again blindly (it could be made twice); it waits for its webhook or an operator.
pub(crate) const KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(23);

/// The clinic charges in US dollars only: "cents" means cents, and the guards above hold.
pub(crate) fn currency_of(field: &str, currency: &str, bad: &mut Vec<FieldViolation>) -> String {
    let c = currency.trim().to_ascii_lowercase();
    if c.is_empty() {
        return "usd".into();
    }
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_lowercase()) {
        bad.push(FieldViolation::new(field, "must be an ISO 4217 code such as usd"));
    }
    c
}

/// Whether `created` is too old for Stripe to still remember the key.
fn key_may_be_forgotten(created: Option<&prost_types::Timestamp>) -> bool {
    created
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .is_some_and(|t| chrono::Utc::now() - t > KEY_LIFETIME)
}

/// Who asked, as authenticated, and whom a service says it acts for. A body's actor never replaces
/// the caller: an admin or patient is recorded as themselves, and a service's word is kept beside
/// its own identity.
fn actors(actor: Option<&Actor>, caller: &era_kit::auth::Caller, bad: &mut Vec<FieldViolation>) -> Actors {
    use era_kit::auth::Role;
    let role = match caller.role {
        Role::Admin => "admin",
        Role::Patient => "patient",
        Role::Service => "service",
    };
    let on_behalf_of = actor
        .filter(|a| caller.role == Role::Service && !a.subject.is_empty())
        .cloned();
    if let Some(a) = &on_behalf_of {
        let printable = |s: &str| !s.chars().any(char::is_control);
        if a.subject.chars().count() > 200 || !printable(&a.subject) {
            bad.push(FieldViolation::new(
                "actor.subject",
                "must be at most 200 printable characters",
            ));
        }
        if a.role.chars().count() > 50 || !printable(&a.role) {
            bad.push(FieldViolation::new(
                "actor.role",
                "must be at most 50 printable characters",
            ));
        }
    }
    Actors {
        by: Actor {
            subject: caller.subject.clone(),
            role: role.into(),
        },
        on_behalf_of,
    }
}

/// Charges the hold now (`manual_capture` false), or authorises it for a capture later.
pub(crate) async fn charge_hold(
    app: &App,
    caller: &era_kit::auth::Caller,
    req: &pb::ChargeHoldRequest,
    manual_capture: bool,
) -> Result<pb::ChargeHoldResponse> {
    let mut bad = Vec::new();
    check_id(&mut bad, "canvas_patient_id", &req.canvas_patient_id);
    check_key(&mut bad, "reference", &req.reference);
    if !req.idempotency_key.is_empty() {
        check_key(&mut bad, "idempotency_key", &req.idempotency_key);
    }
    if req.amount_cents <= 0 {
        bad.push(FieldViolation::new(
            "amount_cents",
            "must be a positive number of cents",
        ));
    } else if req.amount_cents > MAX_CHARGE_CENTS {
        bad.push(FieldViolation::new(
            "amount_cents",
            format!("must be at most {MAX_CHARGE_CENTS} cents; amounts are in cents, not dollars"),
        ));
    }
    let currency = currency_of("currency", &req.currency, &mut bad);
    if currency != "usd" {
        bad.push(FieldViolation::new("currency", "the clinic charges in usd only"));
    }
    if req.amount_cents > 0 && req.amount_cents < MIN_CHARGE_CENTS {
        bad.push(FieldViolation::new(
            "amount_cents",
            format!("must be at least {MIN_CHARGE_CENTS} cents (Stripe's minimum)"),
        ));
    }
    if req.description.chars().count() > 200 {
        bad.push(FieldViolation::new("description", "must be at most 200 characters"));
    }
    let actors = actors(req.actor.as_ref(), caller, &mut bad);
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let client_key = (!req.idempotency_key.is_empty()).then_some(req.idempotency_key.as_str());

    // A key used before names its charge: other parameters under it are a different request.
    if let Some(key) = client_key {
        if let Some(row) = app.store.charge_by_client_key(key).await? {
            let c = &row.charge;
            if c.reference != req.reference
                || c.canvas_patient_id != req.canvas_patient_id
                || c.amount_cents != req.amount_cents
                || c.currency != currency
                || row.manual_capture != manual_capture
            {
                return Err(Error::Precondition(
                    "IDEMPOTENCY_KEY_REUSED",
                    "this idempotency key was used for another charge".into(),
                ));
            }
        }
    }
    let mut lock = app.store.lock(&format!("charge:{}", req.reference)).await?;
    let (row, existing) = match app.store.charge_by_reference(&req.reference).await? {
        Some(row) => {
            let c = &row.charge;
            if c.canvas_patient_id != req.canvas_patient_id
                || c.amount_cents != req.amount_cents
                || c.currency != currency
                || row.manual_capture != manual_capture
            {
                return Err(Error::Precondition(
                    "REFERENCE_CONFLICT",
                    "this reference already has a charge for another patient, amount or way of capture".into(),
                ));
            }
            if is_final(c.status) {
                return Ok(pb::ChargeHoldResponse {
                    charge: Some(row.charge),
                    existing: true,
                });
            }
            // Unfinished: ask Stripe again under the same key; it replays what it did.
            (row, true)
        }
        None => {
            let hold = app
                .store
                .hold(None, Some(&req.canvas_patient_id))
                .await?
                .filter(|h| !h.stripe_payment_method_id.is_empty())
                .ok_or_else(|| Error::Precondition("NO_PAYMENT_HOLD", "the patient has no saved card".into()))?;
            let row = app
                .store
                .insert_charge(NewCharge {
                    reference: &req.reference,
                    client_key,
                    canvas_patient_id: &req.canvas_patient_id,
                    hold_id: hold
                        .id
                        .parse()
                        .map_err(|_| Error::Internal(anyhow::anyhow!("hold id")))?,
                    amount_cents: req.amount_cents,
                    currency: &currency,
                    description: &req.description,
                    actors: &actors,
                    manual_capture,
                })
                .await?;
            (row, false)
        }
    };
    carry_out_charge(app, &mut lock, &row).await?;
    let charge = app
        .store
        .charge_by_id(row.id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a charge vanished")))?;
    Ok(pb::ChargeHoldResponse {
        charge: Some(charge.charge),
        existing,
    })
}

/// Sends (or reads back) a recorded charge under its own key and records Stripe's answer. The
/// caller holds the reference's lock; it is checked right before Stripe is called.
pub(crate) async fn carry_out_charge(app: &App, lock: &mut KeyLock, row: &ChargeRow) -> Result<()> {
    lock.check().await?;
    let outcome = submit(app, row).await?;
    app.store.settle_charge(row.id, &outcome).await
}

pub(crate) fn is_final(status: i32) -> bool {
    use pb::ChargeStatus as S;
    [
        S::Succeeded,
        S::Declined,
        S::AuthenticationRequired,
        S::Failed,
        S::Canceled,
        // Waiting for the pipeline's capture: nothing more for ChargeHold or the resume worker.
        S::Authorized,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

/// The off-session PaymentIntent for a recorded charge, under the charge's own key. A charge whose
/// PaymentIntent is known is only read back; one too old for Stripe to remember the key is not
/// sent again.
async fn submit(app: &App, row: &ChargeRow) -> Result<ChargeOutcome> {
    if !row.charge.stripe_payment_intent_id.is_empty() {
        let path = format!("/v1/payment_intents/{}", row.charge.stripe_payment_intent_id);
        let pi: types::PaymentIntent = app.stripe.get(&path, &Vec::new()).await?;
        return checked(row, &pi);
    }
    if key_may_be_forgotten(row.charge.created_at.as_ref()) {
        return Err(Error::Precondition(
            "REVIEW_REQUIRED",
            "this charge was started over a day ago and its outcome is unknown; check Stripe before charging again"
                .into(),
        ));
    }
    let hold_id = row
        .charge
        .hold_id
        .parse()
        .map_err(|_| Error::Internal(anyhow::anyhow!("hold id")))?;
    let hold = app
        .store
        .hold(Some(hold_id), None)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a charge's hold vanished")))?;
    let c = &row.charge;
    let mut params: Params = vec![
        ("amount".into(), c.amount_cents.to_string()),
        ("currency".into(), c.currency.clone()),
        ("customer".into(), hold.stripe_customer_id.clone()),
        ("payment_method".into(), hold.stripe_payment_method_id.clone()),
        ("payment_method_types[0]".into(), "card".into()),
        ("off_session".into(), "true".into()),
        ("confirm".into(), "true".into()),
        ("metadata[charge_id]".into(), c.id.clone()),
        ("metadata[reference]".into(), c.reference.clone()),
    ];
    if row.manual_capture {
        params.push(("capture_method".into(), "manual".into()));
    }
    // The description stays with us: a caller may name a medication, and Stripe is not told.
    match app
        .stripe
        .post::<types::PaymentIntent>("/v1/payment_intents", &params, &row.stripe_key)
        .await
    {
        Ok(pi) => checked(row, &pi),
        Err(e) if e.kind == StripeErrorKind::Card => Ok(declined(&e)),
        // Stripe refused the request itself (and stores that answer under the key): the charge
        // is over, failed with Stripe's code, rather than pending for ever.
        Err(e) if e.kind == StripeErrorKind::InvalidRequest => {
            tracing::warn!(code = e.code.as_deref().unwrap_or_default(), "Stripe refused a charge");
            Ok(ChargeOutcome {
                status: "failed",
                failure_code: e.code.clone(),
                failure_message: Some("Stripe refused the charge request".into()),
                ..Default::default()
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The PaymentIntent's outcome, once it is shown to be this charge's (amount and currency).
pub(crate) fn checked(row: &ChargeRow, pi: &types::PaymentIntent) -> Result<ChargeOutcome> {
    if pi.amount != row.charge.amount_cents || !pi.currency.eq_ignore_ascii_case(&row.charge.currency) {
        return Err(Error::Internal(anyhow::anyhow!(
            "PaymentIntent {} does not match charge {} (amount or currency)",
            pi.id,
            row.id
        )));
    }
    Ok(outcome_of(pi))
}

/// A Stripe refund's status as ours (one Stripe adds later reads as pending).
pub(crate) fn refund_status_of(r: &types::Refund) -> &'static str {
    match r.status.as_str() {
        "requires_action" => "requires_action",
        "succeeded" => "succeeded",
        "failed" => "failed",
        "canceled" => "canceled",
        _ => "pending",
    }
}

/// The charge's status from a PaymentIntent's.
pub(crate) fn outcome_of(pi: &types::PaymentIntent) -> ChargeOutcome {
    let status = match pi.status.as_str() {
        "succeeded" => "succeeded",
        "processing" => "processing",
        "canceled" => "canceled",
        "requires_capture" => "authorized",
        "requires_action" => "authentication_required",
        "requires_payment_method" if pi.last_payment_error.is_some() => "declined",
        _ => "pending",
    };
    let error = pi.last_payment_error.as_ref();
    let status = if status == "declined" && error.and_then(|e| e.code.as_deref()) == Some("authentication_required") {
        "authentication_required"
    } else {
        status
    };
    ChargeOutcome {
        status,
        payment_intent: Some(pi.id.clone()),
        stripe_charge: pi.latest_charge.clone(),
        failure_code: error.and_then(|e| e.code.clone()),
        decline_code: error.and_then(|e| e.decline_code.clone()),
        failure_message: error.and_then(|e| e.message.clone()),
    }
}

fn declined(e: &StripeError) -> ChargeOutcome {
    let authentication = e.code.as_deref() == Some("authentication_required")
        || e.decline_code.as_deref() == Some("authentication_required");
    ChargeOutcome {
        status: if authentication {
            "authentication_required"
        } else {
            "declined"
        },
        payment_intent: e.payment_intent.as_ref().map(|pi| pi.id.clone()),
        stripe_charge: e.payment_intent.as_ref().and_then(|pi| pi.latest_charge.clone()),
        failure_code: e.code.clone(),
        decline_code: e.decline_code.clone(),
        // Stripe's card messages ("Your card was declined.") are written for people and carry no PHI.
        failure_message: Some(e.message.clone()),
    }
}

/// Captures (`capture`) or releases an authorised charge, once: under the reference's lock, with a
/// key of the charge's own, reading the PaymentIntent back when Stripe refuses (an expired
/// authorisation is canceled by Stripe).
pub(crate) async fn settle_authorization(app: &App, charge_id: &str, capture: bool) -> Result<pb::Charge> {
    let id: uuid::Uuid = charge_id
        .parse()
        .map_err(|_| Error::field("charge_id", "must be a charge id (UUID)"))?;
    let first = app
        .store
        .charge_by_id(id)
        .await?
        .ok_or_else(|| Error::not_found("charge", charge_id))?;
    let mut lock = app.store.lock(&format!("charge:{}", first.charge.reference)).await?;
    let row = app
        .store
        .charge_by_id(id)
        .await?
        .ok_or_else(|| Error::not_found("charge", charge_id))?;
    use pb::ChargeStatus as S;
    let status = S::try_from(row.charge.status).unwrap_or_default();
    let done = if capture { S::Succeeded } else { S::Canceled };
    if status == done && row.manual_capture {
        return Ok(row.charge);
    }
    if capture && status == S::Canceled && row.manual_capture {
        return Err(Error::Precondition(
            "NOT_AUTHORIZED",
            "the authorisation was released".into(),
        ));
    }
    if !capture && status == S::Succeeded {
        return Err(Error::Precondition(
            "ALREADY_CAPTURED",
            "the charge was captured; refund it instead".into(),
        ));
    }
    if status != S::Authorized {
        return Err(Error::Precondition(
            "NOT_AUTHORIZED",
            "only an authorisation waiting for capture can be captured or released".into(),
        ));
    }
    let pi = row.charge.stripe_payment_intent_id.clone();
    let (path, key) = if capture {
        (format!("/v1/payment_intents/{pi}/capture"), format!("capture-{id}"))
    } else {
        (format!("/v1/payment_intents/{pi}/cancel"), format!("release-{id}"))
    };
    lock.check().await?;
    let intent: types::PaymentIntent = match app.stripe.post(&path, &Vec::new(), &key).await {
        Ok(pi) => pi,
        Err(e) if e.kind == StripeErrorKind::InvalidRequest => {
            tracing::warn!(
                code = e.code.as_deref().unwrap_or_default(),
                capture,
                "Stripe refused to settle an authorisation"
            );
            app.stripe
                .get(&format!("/v1/payment_intents/{pi}"), &Vec::new())
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    app.store.settle_charge(row.id, &checked(&row, &intent)?).await?;
    app.store
        .charge_by_id(id)
        .await?
        .map(|r| r.charge)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a charge vanished")))
}

pub(crate) async fn get_charge(app: &App, req: &pb::GetChargeRequest) -> Result<ChargeRow> {
    let row = match (req.id.is_empty(), req.reference.is_empty()) {
        (false, _) => {
            let id = req
                .id
                .parse()
                .map_err(|_| Error::field("id", "must be a charge id (UUID)"))?;
            app.store.charge_by_id(id).await?
        }
        (true, false) => app.store.charge_by_reference(&req.reference).await?,
        (true, true) => return Err(Error::field("id", "give a charge id or a reference")),
    };
    row.ok_or_else(|| Error::not_found("charge", if req.id.is_empty() { &req.reference } else { &req.id }))
}

pub(crate) async fn refund(
    app: &App,
    caller: &era_kit::auth::Caller,
    req: &pb::RefundPaymentRequest,
) -> Result<pb::RefundPaymentResponse> {
    let mut bad = Vec::new();
    let charge_id: Option<uuid::Uuid> = req.charge_id.parse().ok();
    if charge_id.is_none() {
        bad.push(FieldViolation::new("charge_id", "must be a charge id (UUID)"));
    }
    check_key(&mut bad, "idempotency_key", &req.idempotency_key);
    if req.amount_cents.is_some_and(|a| a <= 0) {
        bad.push(FieldViolation::new(
            "amount_cents",
            "must be a positive number of cents",
        ));
    }
    let reason = pb::RefundReason::try_from(req.reason).ok().and_then(refund_reason_code);
    if reason.is_none() {
        bad.push(FieldViolation::new(
            "reason",
            "is required: requested_by_customer, duplicate or fraudulent",
        ));
    }
    if req.note.chars().count() > 500 {
        bad.push(FieldViolation::new("note", "must be at most 500 characters"));
    }
    let actors = actors(req.actor.as_ref(), caller, &mut bad);
    let (Some(charge_id), Some(reason), true) = (charge_id, reason, bad.is_empty()) else {
        return Err(Error::InvalidArgument(bad));
    };
    let mac = format!("{charge_id}|{:?}|{reason}|{}", req.amount_cents, req.note.trim());

    // One refund at a time per charge, so "what remains" is true when it is checked.
    let mut lock = app.store.lock(&format!("refund:{charge_id}")).await?;
    let charge = app
        .store
        .charge_by_id(charge_id)
        .await?
        .ok_or_else(|| Error::not_found("charge", charge_id.to_string()))?;
    let (row, existing) = match app.store.refund_by_client_key(&req.idempotency_key).await? {
        Some(row) if row.request_mac != mac => {
            return Err(Error::Precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used for another refund".into(),
            ))
        }
        Some(row) => (row, true),
        None => {
            if charge.charge.status != pb::ChargeStatus::Succeeded as i32 {
                return Err(Error::Precondition(
                    "CHARGE_NOT_SUCCEEDED",
                    "only a succeeded charge can be refunded".into(),
                ));
            }
            let left = app.store.refundable(charge_id).await?;
            if left <= 0 {
                return Err(Error::Precondition(
                    "ALREADY_REFUNDED",
                    "nothing of this charge remains to refund".into(),
                ));
            }
            let amount = req.amount_cents.unwrap_or(left);
            if amount > left {
                return Err(Error::Precondition(
                    "AMOUNT_EXCEEDS_REFUNDABLE",
                    format!("at most {left} cents remain to refund"),
                ));
            }
            let new = NewRefund {
                client_key: &req.idempotency_key,
                request_mac: &mac,
                amount,
                reason,
                note: req.note.trim(),
                by: &actors,
            };
            let row = app.store.insert_refund(&charge, new).await?;
            (row, false)
        }
    };
    carry_out_refund(app, &mut lock, &charge, &row).await?;
    let charge = app
        .store
        .charge_by_id(charge_id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a charge vanished")))?;
    let mut refund = charge
        .charge
        .refunds
        .iter()
        .find(|r| r.id == row.refund.id)
        .cloned()
        .unwrap_or(row.refund);
    refund.canvas_patient_id = charge.charge.canvas_patient_id.clone();
    Ok(pb::RefundPaymentResponse {
        refund: Some(refund),
        charge: Some(charge.charge),
        existing,
    })
}

pub(crate) fn refund_is_final(status: i32) -> bool {
    [
        pb::RefundStatus::Succeeded,
        pb::RefundStatus::Failed,
        pb::RefundStatus::Canceled,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

/// Sends (or reads back) a recorded refund under its own key and records Stripe's answer. The
/// caller holds the charge's refund lock.
pub(crate) async fn carry_out_refund(app: &App, lock: &mut KeyLock, charge: &ChargeRow, row: &RefundRow) -> Result<()> {
    let done = refund_is_final(row.refund.status);
    if !done && !row.refund.stripe_refund_id.is_empty() {
        // Stripe has it: read where it stands instead of asking again.
        let r: types::Refund = app
            .stripe
            .get(&format!("/v1/refunds/{}", row.refund.stripe_refund_id), &Vec::new())
            .await?;
        let status = refund_status_of(&r);
        app.store
            .settle_refund(row.id, status, Some(&r.id), r.failure_reason.as_deref())
            .await?;
    } else if !done && key_may_be_forgotten(row.refund.created_at.as_ref()) {
        return Err(Error::Precondition(
            "REVIEW_REQUIRED",
            "this refund was started over a day ago and its outcome is unknown; check Stripe first".into(),
        ));
    } else if !done {
        let reason = pb::RefundReason::try_from(row.refund.reason)
            .ok()
            .and_then(refund_reason_code)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("refund {} has no reason", row.id)))?;
        lock.check().await?;
        let params: Params = vec![
            ("payment_intent".into(), charge.charge.stripe_payment_intent_id.clone()),
            ("amount".into(), row.refund.amount_cents.to_string()),
            ("reason".into(), reason.into()),
            ("metadata[refund_id]".into(), row.id.to_string()),
        ];
        match app
            .stripe
            .post::<types::Refund>("/v1/refunds", &params, &format!("refund-{}", row.id))
            .await
        {
            Ok(r) => {
                let status = refund_status_of(&r);
                app.store
                    .settle_refund(row.id, status, Some(&r.id), r.failure_reason.as_deref())
                    .await?;
            }
            Err(e) if e.kind == StripeErrorKind::InvalidRequest && e.status == 400 => {
                // Stripe refused it outright (e.g. more than Stripe thinks remains): nothing moved.
                tracing::warn!(code = e.code.as_deref().unwrap_or_default(), "Stripe refused a refund");
                app.store
                    .settle_refund(row.id, "failed", None, e.code.as_deref())
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
