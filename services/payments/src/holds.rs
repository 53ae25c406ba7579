//! Cards on file: a Stripe customer per Canvas patient, a SetupIntent at intake, and the saved
//! PaymentMethod as the patient's payment hold.

use era_kit::error::FieldViolation;
use era_proto::payments::v1 as pb;

use crate::{
    app::{check_id, check_key, App},
    error::{Error, Result},
    stripe::{types, Params, StripeErrorKind},
};

/// Cards one SetupIntent may be confirmed with server-side.
const MAX_CONFIRMS: i64 = 5;
/// Cards one patient may try server-side in a day, across all their SetupIntents: the intake and
/// portal routes are open to anyone with a token, and must not become a card tester.
const MAX_CONFIRMS_PER_PATIENT: i64 = 10;
/// SetupIntents one patient may open in a day (replays of one are not counted again).
const MAX_SETUPS_PER_PATIENT: i64 = 5;
/// What the caller is told of any decline; Stripe's reason stays in `card_attempts` for support, so
/// the answer cannot be used to learn which detail of a stolen card is wrong.
const DECLINED: &str = "the card could not be saved: try another card, or ask your bank";

/// The patient's Stripe customer, created once. The Stripe key derives from the patient id, so
/// concurrent or repeated first calls converge on one customer.
pub(crate) async fn customer(app: &App, patient: &str, email: &str, name: &str) -> Result<String> {
    if let Some(id) = app.store.customer(patient).await? {
        return Ok(id);
    }
    let _lock = app.store.lock(&format!("customer:{patient}")).await?;
    if let Some(id) = app.store.customer(patient).await? {
        return Ok(id);
    }
    // Only what never changes goes with the create, so its key (from the patient id) always comes
    // with the same parameters; email and name (for receipts) follow as an update.
    let params: Params = vec![("metadata[canvas_patient_id]".into(), patient.into())];
    let created: types::Customer = app
        .stripe
        .post("/v1/customers", &params, &format!("customer-{patient}"))
        .await?;
    let mut contact: Params = Vec::new();
    if !email.is_empty() {
        contact.push(("email".into(), email.into()));
    }
    if !name.is_empty() {
        contact.push(("name".into(), name.into()));
    }
    if !contact.is_empty() {
        let key = crate::app::derived_key("customer-contact", &[&created.id, email, name]);
        let _: types::Customer = app
            .stripe
            .post(&format!("/v1/customers/{}", created.id), &contact, &key)
            .await?;
    }
    app.store.save_customer(patient, &created.id).await?;
    Ok(created.id)
}

pub(crate) async fn create_setup_intent(
    app: &App,
    req: &pb::CreateSetupIntentRequest,
) -> Result<pb::CreateSetupIntentResponse> {
    let mut bad = Vec::new();
    check_id(&mut bad, "canvas_patient_id", &req.canvas_patient_id);
    check_key(&mut bad, "idempotency_key", &req.idempotency_key);
    if !req.email.is_empty() && (!req.email.contains('@') || req.email.len() > 254) {
        bad.push(FieldViolation::new("email", "is not an email address"));
    }
    if req.name.chars().count() > 200 {
        bad.push(FieldViolation::new("name", "must be at most 200 characters"));
    }
    if !req.submission_id.is_empty() && req.submission_id.len() > 100 {
        bad.push(FieldViolation::new("submission_id", "must be at most 100 characters"));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    // The caller's key is durable on its side; the namespace keeps it from colliding with others.
    let key = crate::app::derived_key("setup", &[&req.canvas_patient_id, &req.idempotency_key]);
    // One patient's SetupIntents are opened one at a time, so the cap holds under concurrency.
    let _lock = app.store.lock(&format!("setups:{}", req.canvas_patient_id)).await?;
    let (replay, opened) = app.store.setups(&req.canvas_patient_id, &key).await?;
    if !replay && opened >= MAX_SETUPS_PER_PATIENT {
        return Err(Error::Exhausted(
            "TOO_MANY_CARD_ATTEMPTS",
            "too many cards were started for this patient today; try again tomorrow or contact the clinic".into(),
        ));
    }
    let customer = customer(app, &req.canvas_patient_id, req.email.trim(), req.name.trim()).await?;
    let mut params: Params = vec![
        ("customer".into(), customer.clone()),
        ("usage".into(), "off_session".into()),
        ("payment_method_types[0]".into(), "card".into()),
        ("metadata[canvas_patient_id]".into(), req.canvas_patient_id.clone()),
    ];
    if !req.submission_id.is_empty() {
        params.push(("metadata[submission_id]".into(), req.submission_id.clone()));
    }
    let intent: types::SetupIntent = app.stripe.post("/v1/setup_intents", &params, &key).await?;
    app.store
        .pending_hold(&req.canvas_patient_id, &customer, &intent.id, &key)
        .await?;
    Ok(pb::CreateSetupIntentResponse {
        setup_intent_id: intent.id,
        client_secret: intent.client_secret.unwrap_or_default(),
        stripe_customer_id: customer,
    })
}

pub(crate) async fn save_payment_method(
    app: &App,
    req: &pb::SavePaymentMethodRequest,
) -> Result<pb::SavePaymentMethodResponse> {
    let mut bad = Vec::new();
    check_id(&mut bad, "canvas_patient_id", &req.canvas_patient_id);
    check_id(&mut bad, "setup_intent_id", &req.setup_intent_id);
    if !req.payment_method_id.is_empty() {
        check_id(&mut bad, "payment_method_id", &req.payment_method_id);
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let Some(customer) = app.store.customer(&req.canvas_patient_id).await? else {
        return Err(Error::not_found("setup intent", &req.setup_intent_id));
    };
    let path = format!("/v1/setup_intents/{}", req.setup_intent_id);
    let mut intent: types::SetupIntent = match app.stripe.get(&path, &Vec::new()).await {
        Ok(i) => i,
        Err(e) if e.is_missing() => return Err(Error::not_found("setup intent", &req.setup_intent_id)),
        Err(e) => return Err(e.into()),
    };
    // Another patient's SetupIntent is as good as absent.
    if intent.customer.as_deref() != Some(customer.as_str()) {
        return Err(Error::not_found("setup intent", &req.setup_intent_id));
    }
    if intent.status != "succeeded" && !req.payment_method_id.is_empty() {
        // Confirming server-side with a payment method the client collected (the intake page
        // normally confirms in the browser; this path serves tests and back-office entry). Bounded
        // per SetupIntent: the route is open to any intake, and must not become a card tester.
        let attempt = match app
            .store
            .begin_card_attempt(
                &req.canvas_patient_id,
                &req.setup_intent_id,
                MAX_CONFIRMS,
                MAX_CONFIRMS_PER_PATIENT,
            )
            .await?
        {
            Ok(id) => id,
            Err(cap) => {
                tracing::warn!(?cap, "card attempts capped");
                return Err(Error::Exhausted(
                    "TOO_MANY_CARD_ATTEMPTS",
                    "too many cards were tried; try again tomorrow or contact the clinic".into(),
                ));
            }
        };
        let params: Params = vec![("payment_method".into(), req.payment_method_id.clone())];
        let key = format!("setup-confirm-{}-{}", req.setup_intent_id, req.payment_method_id);
        intent = match app.stripe.post(&format!("{path}/confirm"), &params, &key).await {
            Ok(i) => i,
            Err(e) if e.kind == StripeErrorKind::Card => {
                let code = e
                    .decline_code
                    .as_deref()
                    .or(e.code.as_deref())
                    .unwrap_or("card_declined");
                app.store.finish_card_attempt(attempt, "declined", Some(code)).await?;
                app.store.set_hold_status(&req.setup_intent_id, "failed").await?;
                return Err(Error::Precondition("CARD_DECLINED", DECLINED.into()));
            }
            // A payment method Stripe does not know is the caller's mistake, not ours.
            Err(e) if e.is_missing() => {
                app.store
                    .finish_card_attempt(attempt, "unknown_payment_method", e.code.as_deref())
                    .await?;
                return Err(Error::InvalidArgument(vec![FieldViolation::new(
                    "payment_method_id",
                    "is not a payment method Stripe knows",
                )]));
            }
            Err(e) => {
                app.store
                    .finish_card_attempt(attempt, "failed", e.code.as_deref())
                    .await?;
                return Err(e.into());
            }
        };
        app.store.finish_card_attempt(attempt, &intent.status, None).await?;
    }
    if intent.status == "requires_action" {
        app.store
            .set_hold_status(&req.setup_intent_id, "requires_action")
            .await?;
    }
    if intent.status != "succeeded" {
        return Err(Error::Precondition(
            "SETUP_NOT_SUCCEEDED",
            format!("the SetupIntent is {}, not succeeded", intent.status),
        ));
    }
    let pm_id = intent
        .payment_method
        .clone()
        .filter(|pm| pm.starts_with("pm_") && pm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "a succeeded SetupIntent without a readable payment method"
            ))
        })?;
    let hold = activate(app, &req.canvas_patient_id, &customer, &req.setup_intent_id, &pm_id).await?;
    Ok(pb::SavePaymentMethodResponse { hold: Some(hold) })
}

/// Makes the card of a succeeded SetupIntent the patient's active hold, with the card's details as
/// Stripe has them.
pub(crate) async fn activate(
    app: &App,
    patient: &str,
    customer: &str,
    setup_intent: &str,
    payment_method: &str,
) -> Result<pb::PaymentHold> {
    let pm: types::PaymentMethod = app
        .stripe
        .get(&format!("/v1/payment_methods/{payment_method}"), &Vec::new())
        .await?;
    let card = pm.card.unwrap_or_default();
    let card = pb::Card {
        brand: card.brand,
        last4: card.last4,
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        funding: card.funding,
    };
    app.store
        .activate_hold(patient, customer, setup_intent, &pm.id, &card)
        .await
}
