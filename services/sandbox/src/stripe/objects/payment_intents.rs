//! `/v1/payment_intents` and the charges they make (stripe.md §2.4). Confirming charges the card
//! at once: success makes a `ch_...` charge and `succeeded` (or `requires_capture` with manual
//! capture); a decline makes a failed charge and answers 402 with the PaymentIntent embedded, back in
//! `requires_payment_method`; a 3D Secure card off-session answers 402 `authentication_required`,
//! on-session it waits in `requires_action` until `/_sandbox/stripe/payment_intents/{id}/authenticate`.

use serde_json::{json, Value};

use super::{client_secret, currency, customers, money, new_id, page, payment_methods, setup_intents, Row};
use crate::stripe::{
    cards::{self, Behaviour, Decline},
    errors::{StripeError, StripeResult},
    form::{Metadata, Params},
    Ctx, State,
};

#[derive(Clone, Debug)]
pub(crate) struct PaymentIntent {
    pub(crate) id: String,
    created: i64,
    client_secret: String,
    pub(crate) amount: i64,
    amount_capturable: i64,
    amount_received: i64,
    pub(crate) currency: String,
    pub(crate) customer: Option<String>,
    description: Option<String>,
    metadata: Metadata,
    payment_method: Option<String>,
    payment_method_types: Vec<String>,
    automatic_payment_methods: Option<Value>,
    capture_method: String,
    confirmation_method: String,
    pub(crate) status: String,
    last_payment_error: Option<Value>,
    pub(crate) latest_charge: Option<String>,
    next_action: Option<Value>,
    receipt_email: Option<String>,
    setup_future_usage: Option<String>,
    statement_descriptor: Option<String>,
    statement_descriptor_suffix: Option<String>,
    canceled_at: Option<i64>,
    cancellation_reason: Option<String>,
}

impl Row for PaymentIntent {
    fn id(&self) -> &str {
        &self.id
    }
}

impl PaymentIntent {
    pub(crate) fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_details": { "tip": {} },
            "amount_received": self.amount_received,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": self.automatic_payment_methods,
            "canceled_at": self.canceled_at,
            "cancellation_reason": self.cancellation_reason,
            "capture_method": self.capture_method,
            "client_secret": self.client_secret,
            "confirmation_method": self.confirmation_method,
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "next_action": self.next_action,
            "on_behalf_of": null,
            "payment_method": self.payment_method,
            "payment_method_configuration_details": null,
            "payment_method_options": {
                "card": { "installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic" }
            },
            "payment_method_types": self.payment_method_types,
            "processing": null,
            "receipt_email": self.receipt_email,
            "review": null,
            "setup_future_usage": self.setup_future_usage,
            "shipping": null,
            "source": null,
            "statement_descriptor": self.statement_descriptor,
            "statement_descriptor_suffix": self.statement_descriptor_suffix,
            "status": self.status,
            "transfer_data": null,
            "transfer_group": null,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Charge {
    pub(crate) id: String,
    created: i64,
    pub(crate) amount: i64,
    pub(crate) amount_captured: i64,
    pub(crate) amount_refunded: i64,
    captured: bool,
    pub(crate) currency: String,
    customer: Option<String>,
    description: Option<String>,
    failure: Option<&'static Decline>,
    metadata: Metadata,
    pub(crate) payment_intent: Option<String>,
    payment_method: Option<String>,
    card: &'static cards::TestCard,
    receipt_email: Option<String>,
    pub(crate) status: String,
    pub(crate) refunds: Vec<String>,
    balance_transaction: Option<String>,
}

impl Row for Charge {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Charge {
    pub(crate) fn behaviour(&self) -> &'static Behaviour {
        &self.card.behaviour
    }

    pub(crate) fn refunded(&self) -> bool {
        self.amount_refunded > 0 && self.amount_refunded >= self.amount_captured
    }

    pub(crate) fn render(&self, st: &State) -> Value {
        let outcome = match self.failure {
            None => json!({
                "network_status": "approved_by_network",
                "reason": null,
                "risk_level": "normal",
                "risk_score": 32,
                "seller_message": "Payment complete.",
                "type": "authorized",
            }),
            Some(d) => json!({
                "network_status": "declined_by_network",
                "reason": d.decline_code,
                "risk_level": "normal",
                "risk_score": 32,
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }),
        };
        let refunds: Vec<Value> = self
            .refunds
            .iter()
            .rev()
            .filter_map(|r| st.refunds.get(r).map(super::refunds::Refund::render))
            .collect();
        json!({
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "application": null,
            "application_fee": null,
            "balance_transaction": self.balance_transaction,
            "billing_details": {
                "address": { "city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null },
                "email": null, "name": null, "phone": null
            },
            "calculated_statement_descriptor": "ERA SANDBOX",
            "captured": self.captured,
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "disputed": false,
            "failure_balance_transaction": null,
            "failure_code": self.failure.map(|d| d.code),
            "failure_message": self.failure.map(|d| d.message),
            "fraud_details": {},
            "livemode": false,
            "metadata": self.metadata,
            "outcome": outcome,
            "paid": self.failure.is_none(),
            "payment_intent": self.payment_intent,
            "payment_method": self.payment_method,
            "payment_method_details": {
                "card": {
                    "brand": self.card.brand,
                    "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass" },
                    "country": "US",
                    "exp_month": 12,
                    "funding": self.card.funding,
                    "last4": self.card.last4,
                    "network": self.card.brand,
                    "three_d_secure": null,
                },
                "type": "card",
            },
            "receipt_email": self.receipt_email,
            "receipt_url": null,
            "refunded": self.refunded(),
            "refunds": {
                "object": "list",
                "data": refunds,
                "has_more": false,
                "total_count": self.refunds.len(),
                "url": format!("/v1/charges/{}/refunds", self.id),
            },
            "review": null,
            "shipping": null,
            "status": self.status,
        })
    }
}

const CREATE: &[&str] = &[
    "amount",
    "automatic_payment_methods",
    "capture_method",
    "confirm",
    "confirmation_method",
    "currency",
    "customer",
    "description",
    "error_on_requires_action",
    "mandate_data",
    "metadata",
    "off_session",
    "payment_method",
    "payment_method_options",
    "payment_method_types",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "use_stripe_sdk",
];

const CONFIRMABLE: &[&str] = &["requires_payment_method", "requires_confirmation", "requires_action"];
const CANCELABLE: &[&str] = &[
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
];

/// `amount` in minor units: Stripe's 50-cent minimum for usd, and its maximum.
fn amount(p: &Params, currency: &str, required: bool) -> StripeResult<Option<i64>> {
    let Some(amount) = p.int("amount")? else {
        return if required {
            Err(StripeError::missing("amount"))
        } else {
            Ok(None)
        };
    };
    let minimum = if currency == "usd" { 50 } else { 1 };
    if amount < minimum {
        return Err(StripeError::param(
            "amount_too_small",
            format!("Amount must be at least {} {currency}", money(minimum, currency)),
            "amount",
        ));
    }
    if amount > 99_999_999 {
        return Err(StripeError::param(
            "amount_too_large",
            format!("Amount must be no more than {}", money(99_999_999, currency)),
            "amount",
        ));
    }
    Ok(Some(amount))
}

/// `off_session`: `true`, `one_off` or `recurring` mean off-session.
fn off_session(p: &Params) -> StripeResult<Option<bool>> {
    match p.str("off_session")?.as_deref() {
        None => Ok(None),
        Some("true" | "one_off" | "recurring") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(StripeError::param(
            "parameter_invalid_string",
            format!("Invalid off_session: must be one of true, false, one_off, recurring (got {other})"),
            "off_session",
        )),
    }
}

/// A card that belongs to a customer may only be used with that customer (stripe.md §2.4).
fn check_owner(cx: &Ctx<'_>, pm: &str, customer: Option<&str>) -> StripeResult<()> {
    match &payment_methods::get(cx, pm)?.customer {
        Some(owner) if Some(owner.as_str()) != customer => Err(StripeError::invalid(format!(
            "The payment_method parameter supplied {pm} belongs to the Customer {owner}. Please include the Customer \
             in the customer parameter on the PaymentIntent."
        ))
        .with("param", "payment_method")),
        _ => Ok(()),
    }
}

pub(crate) fn create(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(CREATE)?;
    let currency = currency(p, "currency")?.ok_or_else(|| StripeError::missing("currency"))?;
    let amount = amount(p, &currency, true)?.unwrap_or_default();
    let confirm = p.bool("confirm")?.unwrap_or(false);
    let off_session = off_session(p)?;
    if off_session.is_some() && !confirm {
        return Err(StripeError::param(
            "parameter_invalid_string",
            "You can only set `off_session` when `confirm` is true.".to_owned(),
            "off_session",
        ));
    }
    let error_on_requires_action = p.bool("error_on_requires_action")?.unwrap_or(false);
    let capture_method = p
        .choice("capture_method", &["automatic", "automatic_async", "manual"])?
        .unwrap_or_else(|| "automatic".into());
    let confirmation_method = p
        .choice("confirmation_method", &["automatic", "manual"])?
        .unwrap_or_else(|| "automatic".into());
    let setup_future_usage = p.choice("setup_future_usage", &["on_session", "off_session"])?;
    let automatic = setup_intents::automatic_payment_methods(p)?;
    if confirm && automatic.as_ref().is_some_and(|(_, r)| *r) && !p.has("return_url") && off_session != Some(true) {
        return Err(setup_intents::return_url_required("PaymentIntent"));
    }
    let mut types = p.list("payment_method_types")?;
    if types.is_empty() && automatic.is_none() {
        types.push("card".into());
    }
    let metadata = p.metadata()?.build()?;
    let description = p.str("description")?;
    let receipt_email = p.str("receipt_email")?;
    let statement_descriptor = p.str("statement_descriptor")?;
    let statement_descriptor_suffix = p.str("statement_descriptor_suffix")?;
    let customer = match p.str("customer")? {
        Some(c) => Some(customers::find(cx, &c, "customer")?.id.clone()),
        None => None,
    };
    let payment_method = match p.str("payment_method")? {
        Some(r) => {
            let pm = payment_methods::resolve(cx, &r, "payment_method")?;
            check_owner(cx, &pm, customer.as_deref())?;
            Some(pm)
        }
        None => None,
    };
    let id = new_id("pi_", 24);
    let intent = PaymentIntent {
        id: id.clone(),
        created: cx.now,
        client_secret: client_secret(&id),
        amount,
        amount_capturable: 0,
        amount_received: 0,
        currency,
        customer,
        description,
        metadata,
        status: if payment_method.is_some() {
            "requires_confirmation"
        } else {
            "requires_payment_method"
        }
        .into(),
        payment_method,
        payment_method_types: types,
        automatic_payment_methods: automatic.map(|(v, _)| v),
        capture_method,
        confirmation_method,
        last_payment_error: None,
        latest_charge: None,
        next_action: None,
        receipt_email,
        setup_future_usage,
        statement_descriptor,
        statement_descriptor_suffix,
        canceled_at: None,
        cancellation_reason: None,
    };
    let rendered = intent.render();
    cx.st.payment_intents.insert(intent);
    cx.emit("payment_intent.created", rendered, None);
    if confirm {
        attempt(cx, &id, off_session.unwrap_or(false) || error_on_requires_action, false)?;
    }
    Ok(render(cx, &id))
}

fn render(cx: &Ctx<'_>, id: &str) -> Value {
    cx.st
        .payment_intents
        .get(id)
        .map(PaymentIntent::render)
        .unwrap_or_default()
}

fn find(cx: &Ctx<'_>, id: &str) -> StripeResult<PaymentIntent> {
    cx.st
        .payment_intents
        .get(id)
        .cloned()
        .ok_or_else(|| StripeError::no_such("payment_intent", id, "intent"))
}

fn intent_mut<'a>(cx: &'a mut Ctx<'_>, id: &str) -> StripeResult<&'a mut PaymentIntent> {
    cx.st
        .payment_intents
        .get_mut(id)
        .ok_or_else(|| StripeError::no_such("payment_intent", id, "intent"))
}

/// Charges the intent's card. `no_action` (off-session, or `error_on_requires_action`) turns a
/// needed authentication into a 402; `authenticated` means 3D Secure was just completed.
fn attempt(cx: &mut Ctx<'_>, id: &str, no_action: bool, authenticated: bool) -> StripeResult<()> {
    let intent = find(cx, id)?;
    let Some(pm) = intent.payment_method.clone() else {
        return Err(StripeError::invalid_code(
            "payment_intent_unexpected_state",
            "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm this \
             PaymentIntent with a payment method, update the PaymentIntent with a payment_method.",
            None,
        )
        .with("payment_intent", intent.render()));
    };
    let method = payment_methods::get(cx, &pm)?.clone();
    let needs_auth = !authenticated
        && match method.card.behaviour {
            Behaviour::AlwaysAuthenticate { .. } => true,
            Behaviour::AuthenticateUnlessSetUp => !(no_action && method.set_up),
            _ => false,
        };
    if needs_auth && !no_action {
        let intent = intent_mut(cx, id)?;
        intent.status = "requires_action".into();
        intent.next_action = Some(setup_intents::three_d_secure_action());
        let rendered = intent.render();
        cx.emit("payment_intent.requires_action", rendered, None);
        return Ok(());
    }
    let decline: Option<&'static Decline> = if needs_auth {
        Some(&cards::AUTHENTICATION_REQUIRED)
    } else {
        match method.card.behaviour {
            Behaviour::Declines(d) | Behaviour::ChargesFail(d) => Some(d),
            Behaviour::AlwaysAuthenticate { then } => then,
            _ => None,
        }
    };
    // Stripe makes no charge when authentication stops the payment before the network.
    let charge_id = (!needs_auth).then(|| {
        let charge = Charge {
            id: new_id("ch_", 24),
            created: cx.now,
            amount: intent.amount,
            amount_captured: 0,
            amount_refunded: 0,
            captured: false,
            currency: intent.currency.clone(),
            customer: intent.customer.clone(),
            description: intent.description.clone(),
            failure: decline,
            metadata: intent.metadata.clone(),
            payment_intent: Some(id.to_owned()),
            payment_method: Some(pm.clone()),
            card: method.card,
            receipt_email: intent.receipt_email.clone(),
            status: if decline.is_some() { "failed" } else { "succeeded" }.into(),
            refunds: Vec::new(),
            balance_transaction: None,
        };
        let charge_id = charge.id.clone();
        cx.st.charges.insert(charge);
        charge_id
    });

    if let Some(decline) = decline {
        let method_json = method.render();
        let mut error = StripeError::card(decline).with("payment_method", method_json);
        if let Some(ch) = &charge_id {
            error = error.with("charge", ch.clone());
            let rendered = cx.st.charges.get(ch).map(|c| c.render(cx.st)).unwrap_or_default();
            cx.emit("charge.failed", rendered, None);
            cx.effect("charge.created", ch, Some(format!("failed {}", decline.decline_code)));
        }
        let intent = intent_mut(cx, id)?;
        intent.status = "requires_payment_method".into();
        intent.payment_method = None;
        intent.next_action = None;
        intent.last_payment_error = Some(error.object());
        if charge_id.is_some() {
            intent.latest_charge = charge_id.clone();
        }
        let rendered = intent.render();
        cx.emit("payment_intent.payment_failed", rendered.clone(), None);
        cx.effect("payment_intent.payment_failed", id, Some(decline.code.to_owned()));
        return Err(error.with("payment_intent", rendered));
    }

    let ch = charge_id.unwrap_or_default();
    let manual = intent.capture_method == "manual";
    if let Some(charge) = cx.st.charges.get_mut(&ch) {
        charge.captured = !manual;
        charge.amount_captured = if manual { 0 } else { charge.amount };
        charge.balance_transaction = (!manual).then(|| new_id("txn_", 24));
    }
    let rendered = cx.st.charges.get(&ch).map(|c| c.render(cx.st)).unwrap_or_default();
    cx.emit("charge.succeeded", rendered, None);
    cx.effect(
        "charge.created",
        &ch,
        Some(format!("succeeded {}", money(intent.amount, &intent.currency))),
    );
    // Saving the card for later: Stripe attaches it to the intent's customer.
    if let (Some("off_session" | "on_session"), Some(customer)) =
        (intent.setup_future_usage.as_deref(), intent.customer.as_deref())
    {
        if method.customer.is_none() {
            payment_methods::attach_to(cx, &pm, customer);
        }
        if let Some(m) = cx.st.payment_methods.get_mut(&pm) {
            m.set_up = m.set_up || intent.setup_future_usage.as_deref() == Some("off_session");
        }
    }
    let intent = intent_mut(cx, id)?;
    intent.latest_charge = Some(ch);
    intent.next_action = None;
    intent.last_payment_error = None;
    if manual {
        intent.status = "requires_capture".into();
        intent.amount_capturable = intent.amount;
        let rendered = intent.render();
        cx.emit("payment_intent.amount_capturable_updated", rendered, None);
    } else {
        intent.status = "succeeded".into();
        intent.amount_received = intent.amount;
        let detail = money(intent.amount, &intent.currency);
        let rendered = intent.render();
        cx.emit("payment_intent.succeeded", rendered, None);
        cx.effect("payment_intent.succeeded", id, Some(detail));
    }
    Ok(())
}

/// Completes 3D Secure for an intent in `requires_action` and charges it (the `/_sandbox` control).
pub(crate) fn authenticate(cx: &mut Ctx<'_>, id: &str) -> StripeResult<Value> {
    let intent = find(cx, id)?;
    if intent.status != "requires_action" {
        return Err(StripeError::invalid_code(
            "payment_intent_unexpected_state",
            format!("PaymentIntent {id} has status {}, not requires_action.", intent.status),
            None,
        ));
    }
    attempt(cx, id, false, true)?;
    Ok(render(cx, id))
}

/// The sandbox control for an authorisation that ran past its window: Stripe cancels an uncaptured
/// PaymentIntent itself (`cancellation_reason: automatic`), and a capture then fails.
pub(crate) fn expire_authorization(cx: &mut Ctx<'_>, id: &str) -> StripeResult<Value> {
    let intent = find(cx, id)?;
    if intent.status != "requires_capture" {
        return Err(StripeError::invalid_code(
            "payment_intent_unexpected_state",
            format!("PaymentIntent {id} has status {}, not requires_capture.", intent.status),
            None,
        ));
    }
    let now = cx.now;
    let intent = intent_mut(cx, id)?;
    intent.status = "canceled".into();
    intent.canceled_at = Some(now);
    intent.cancellation_reason = Some("automatic".into());
    intent.next_action = None;
    intent.amount_capturable = 0;
    let rendered = intent.render();
    cx.emit("payment_intent.canceled", rendered.clone(), None);
    cx.effect("payment_intent.canceled", id, Some("authorisation expired".into()));
    Ok(rendered)
}

fn unexpected(intent: &PaymentIntent, verb: &str, allowed: &[&str]) -> StripeError {
    let past = if verb == "cancel" { "canceled" } else { "confirmed" };
    StripeError::invalid_code(
        "payment_intent_unexpected_state",
        format!(
            "You cannot {verb} this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the \
             following statuses may be {past}: {}.",
            intent.status,
            allowed.join(", ")
        ),
        None,
    )
    .with("payment_intent", intent.render())
}

pub(crate) fn confirm(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "capture_method",
        "client_secret",
        "error_on_requires_action",
        "mandate_data",
        "off_session",
        "payment_method",
        "payment_method_options",
        "payment_method_types",
        "receipt_email",
        "return_url",
        "setup_future_usage",
        "use_stripe_sdk",
    ])?;
    let off_session = off_session(p)?.unwrap_or(false);
    let error_on_requires_action = p.bool("error_on_requires_action")?.unwrap_or(false);
    let capture_method = p.choice("capture_method", &["automatic", "automatic_async", "manual"])?;
    let setup_future_usage = p.choice("setup_future_usage", &["on_session", "off_session"])?;
    let receipt_email = p.str("receipt_email")?;
    let id = path[1].clone();
    let intent = find(cx, &id)?;
    if !CONFIRMABLE.contains(&intent.status.as_str()) {
        return Err(unexpected(&intent, "confirm", CONFIRMABLE));
    }
    let redirects = intent
        .automatic_payment_methods
        .as_ref()
        .is_some_and(|a| a["enabled"] == true && a["allow_redirects"] != "never");
    if redirects && !p.has("return_url") && !off_session {
        return Err(setup_intents::return_url_required("PaymentIntent"));
    }
    let pm = match p.str("payment_method")? {
        Some(r) => {
            let pm = payment_methods::resolve(cx, &r, "payment_method")?;
            check_owner(cx, &pm, intent.customer.as_deref())?;
            Some(pm)
        }
        None => None,
    };
    let intent = intent_mut(cx, &id)?;
    if let Some(pm) = pm {
        intent.payment_method = Some(pm);
    }
    if let Some(c) = capture_method {
        intent.capture_method = c;
    }
    if setup_future_usage.is_some() {
        intent.setup_future_usage = setup_future_usage;
    }
    if receipt_email.is_some() {
        intent.receipt_email = receipt_email;
    }
    attempt(cx, &id, off_session || error_on_requires_action, false)?;
    Ok(render(cx, &id))
}

pub(crate) fn cancel(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["cancellation_reason"])?;
    let reason = p.choice(
        "cancellation_reason",
        &["duplicate", "fraudulent", "requested_by_customer", "abandoned"],
    )?;
    let id = path[1].clone();
    let intent = find(cx, &id)?;
    if !CANCELABLE.contains(&intent.status.as_str()) {
        return Err(unexpected(&intent, "cancel", CANCELABLE));
    }
    let now = cx.now;
    let intent = intent_mut(cx, &id)?;
    intent.status = "canceled".into();
    intent.canceled_at = Some(now);
    intent.cancellation_reason = reason;
    intent.next_action = None;
    intent.amount_capturable = 0;
    let rendered = intent.render();
    cx.emit("payment_intent.canceled", rendered.clone(), None);
    cx.effect("payment_intent.canceled", &id, None);
    Ok(rendered)
}

pub(crate) fn capture(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "amount_to_capture",
        "metadata",
        "statement_descriptor",
        "statement_descriptor_suffix",
    ])?;
    let to_capture = p.positive_int("amount_to_capture")?;
    let metadata = p.metadata()?;
    let id = path[1].clone();
    let intent = find(cx, &id)?;
    if intent.status != "requires_capture" {
        return Err(StripeError::invalid_code(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one \
                 of the following statuses may be captured: requires_capture.",
                intent.status
            ),
            None,
        )
        .with("payment_intent", intent.render()));
    }
    let amount = to_capture.unwrap_or(intent.amount_capturable);
    if amount > intent.amount_capturable {
        return Err(StripeError::invalid_code(
            "amount_too_large",
            format!(
                "The amount to capture ({}) is greater than the amount capturable ({}).",
                money(amount, &intent.currency),
                money(intent.amount_capturable, &intent.currency)
            ),
            Some("amount_to_capture"),
        ));
    }
    let ch = intent.latest_charge.clone().unwrap_or_default();
    if let Some(charge) = cx.st.charges.get_mut(&ch) {
        charge.captured = true;
        charge.amount_captured = amount;
        charge.balance_transaction = Some(new_id("txn_", 24));
    }
    let rendered = cx.st.charges.get(&ch).map(|c| c.render(cx.st)).unwrap_or_default();
    cx.emit("charge.captured", rendered, None);
    let intent = intent_mut(cx, &id)?;
    metadata.apply(&mut intent.metadata)?;
    intent.status = "succeeded".into();
    intent.amount_received = amount;
    intent.amount_capturable = 0;
    let detail = money(amount, &intent.currency);
    let rendered = intent.render();
    cx.emit("payment_intent.succeeded", rendered.clone(), None);
    cx.effect("payment_intent.succeeded", &id, Some(detail));
    Ok(rendered)
}

pub(crate) fn retrieve(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["client_secret"])?;
    Ok(find(cx, &path[1])?.render())
}

pub(crate) fn update(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "amount",
        "customer",
        "description",
        "metadata",
        "payment_method",
        "receipt_email",
        "setup_future_usage",
        "statement_descriptor",
        "statement_descriptor_suffix",
    ])?;
    let mut intent = find(cx, &path[1])?;
    let old = intent.render();
    let amount = amount(p, &intent.currency, false)?;
    let metadata = p.metadata()?;
    let description = p.patch_str("description")?;
    let receipt_email = p.patch_str("receipt_email")?;
    let setup_future_usage = p.choice("setup_future_usage", &["on_session", "off_session"])?;
    let changes_payment = amount.is_some() || p.has("payment_method") || p.has("customer");
    if changes_payment && !CONFIRMABLE.contains(&intent.status.as_str()) {
        return Err(StripeError::invalid_code(
            "payment_intent_unexpected_state",
            format!(
                "You cannot update this PaymentIntent because it has a status of {}.",
                intent.status
            ),
            None,
        ));
    }
    if let Some(c) = p.str("customer")? {
        intent.customer = Some(customers::find(cx, &c, "customer")?.id.clone());
    }
    if let Some(r) = p.str("payment_method")? {
        let pm = payment_methods::resolve(cx, &r, "payment_method")?;
        check_owner(cx, &pm, intent.customer.as_deref())?;
        intent.payment_method = Some(pm);
        intent.status = "requires_confirmation".into();
    }
    if let Some(a) = amount {
        intent.amount = a;
    }
    metadata.apply(&mut intent.metadata)?;
    if let Some(d) = description {
        intent.description = d;
    }
    if let Some(e) = receipt_email {
        intent.receipt_email = e;
    }
    if setup_future_usage.is_some() {
        intent.setup_future_usage = setup_future_usage;
    }
    if let Some(s) = p.str("statement_descriptor")? {
        intent.statement_descriptor = Some(s);
    }
    if let Some(s) = p.str("statement_descriptor_suffix")? {
        intent.statement_descriptor_suffix = Some(s);
    }
    let new = intent.render();
    cx.st.payment_intents.insert(intent);
    if let Some(previous) = customers::previous_attributes(&old, &new) {
        cx.emit("payment_intent.updated", new.clone(), Some(previous));
    }
    Ok(new)
}

pub(crate) fn list(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&["customer", "limit", "starting_after", "ending_before", "created"])?;
    let customer = p.str("customer")?;
    let items = cx
        .st
        .payment_intents
        .newest_first()
        .filter(|i| customer.is_none() || i.customer == customer)
        .map(|i| (i.id.clone(), i.render()))
        .collect();
    page("/v1/payment_intents", "payment_intent", items, p)
}

pub(crate) fn retrieve_charge(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    cx.st
        .charges
        .get(&path[1])
        .map(|c| c.render(cx.st))
        .ok_or_else(|| StripeError::no_such("charge", &path[1], "id"))
}

pub(crate) fn list_charges(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "customer",
        "payment_intent",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let customer = p.str("customer")?;
    let intent = p.str("payment_intent")?;
    let items = cx
        .st
        .charges
        .newest_first()
        .filter(|c| customer.is_none() || c.customer == customer)
        .filter(|c| intent.is_none() || c.payment_intent == intent)
        .map(|c| (c.id.clone(), c.render(cx.st)))
        .collect();
    page("/v1/charges", "charge", items, p)
}
