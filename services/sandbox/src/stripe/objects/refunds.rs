//! `/v1/refunds` (stripe.md §2.5): full or partial (repeatable) refunds of a charge or of a
//! PaymentIntent's charge; refunding more than is left is refused. `pm_card_pendingRefund` and
//! `pm_card_refundFail` refunds settle through `/_sandbox/stripe/refunds/{id}/settle`.

use serde_json::{json, Value};

use super::{money, new_id, page, Row};
use crate::stripe::{
    cards::Behaviour,
    errors::{StripeError, StripeResult},
    form::{Metadata, Params},
    Ctx,
};

#[derive(Clone, Debug)]
pub(crate) struct Refund {
    pub(crate) id: String,
    created: i64,
    pub(crate) amount: i64,
    pub(crate) charge: String,
    currency: String,
    metadata: Metadata,
    payment_intent: Option<String>,
    reason: Option<String>,
    pub(crate) status: String,
    failure_reason: Option<String>,
    balance_transaction: String,
}

impl Row for Refund {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Refund {
    pub(crate) fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "balance_transaction": self.balance_transaction,
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "destination_details": {
                "card": { "reference": null, "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund" },
                "type": "card",
            },
            "failure_reason": self.failure_reason,
            "metadata": self.metadata,
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": self.status,
            "transfer_reversal": null,
        })
    }
}

pub(crate) fn create(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "amount",
        "charge",
        "payment_intent",
        "reason",
        "metadata",
        "instructions_email",
        "refund_application_fee",
        "reverse_transfer",
    ])?;
    let amount = p.positive_int("amount")?;
    let reason = p.choice("reason", &["duplicate", "fraudulent", "requested_by_customer"])?;
    let metadata = p.metadata()?.build()?;
    let (charge_param, intent_param) = (p.str("charge")?, p.str("payment_intent")?);
    let charge_id = match (&charge_param, &intent_param) {
        (Some(ch), _) => {
            let charge = cx
                .st
                .charges
                .get(ch)
                .ok_or_else(|| StripeError::no_such("charge", ch, "charge"))?;
            if let Some(pi) = &intent_param {
                if charge.payment_intent.as_deref() != Some(pi.as_str()) {
                    return Err(StripeError::invalid(format!(
                        "The charge {ch} does not belong to the PaymentIntent {pi}."
                    ))
                    .with("param", "payment_intent"));
                }
            }
            ch.clone()
        }
        (None, Some(pi)) => {
            let intent = cx
                .st
                .payment_intents
                .get(pi)
                .ok_or_else(|| StripeError::no_such("payment_intent", pi, "payment_intent"))?;
            let paid = intent.latest_charge.as_ref().filter(|ch| {
                cx.st
                    .charges
                    .get(ch)
                    .is_some_and(|c| c.status == "succeeded" && c.amount_captured > 0)
            });
            match paid {
                Some(ch) => ch.clone(),
                None => {
                    return Err(StripeError::invalid(format!(
                        "This PaymentIntent ({pi}) does not have a successful charge to refund."
                    ))
                    .with("param", "payment_intent"))
                }
            }
        }
        (None, None) => {
            return Err(StripeError::param(
                "parameter_missing",
                "One of the following params should be provided for this request: payment_intent or charge.".to_owned(),
                "charge",
            ))
        }
    };
    let charge = cx
        .st
        .charges
        .get(&charge_id)
        .cloned()
        .ok_or_else(|| StripeError::no_such("charge", &charge_id, "charge"))?;
    if charge.status != "succeeded" || charge.amount_captured == 0 {
        return Err(StripeError::invalid(format!(
            "Charge {charge_id} has not been successfully captured and cannot be refunded."
        ))
        .with("param", "charge"));
    }
    let remaining = charge.amount_captured - charge.amount_refunded;
    if remaining <= 0 {
        return Err(StripeError::invalid_code(
            "charge_already_refunded",
            format!("Charge {charge_id} has already been refunded."),
            None,
        ));
    }
    let amount = amount.unwrap_or(remaining);
    if amount > remaining {
        return Err(StripeError::invalid_code(
            "amount_too_large",
            format!(
                "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                money(amount, &charge.currency),
                money(remaining, &charge.currency)
            ),
            Some("amount"),
        ));
    }
    let status = match charge.behaviour() {
        Behaviour::PendingRefund => "pending",
        _ => "succeeded",
    };
    let refund = Refund {
        id: new_id("re_", 24),
        created: cx.now,
        amount,
        charge: charge_id.clone(),
        currency: charge.currency.clone(),
        metadata,
        payment_intent: charge.payment_intent.clone(),
        reason,
        status: status.into(),
        failure_reason: None,
        balance_transaction: new_id("txn_", 24),
    };
    let id = refund.id.clone();
    let rendered = refund.render();
    cx.st.refunds.insert(refund);
    let charge_json = {
        let c = cx
            .st
            .charges
            .get_mut(&charge_id)
            .ok_or_else(|| StripeError::no_such("charge", &charge_id, "charge"))?;
        c.amount_refunded += amount;
        c.refunds.push(id.clone());
        cx.st
            .charges
            .get(&charge_id)
            .map(|c| c.render(cx.st))
            .unwrap_or_default()
    };
    cx.emit("refund.created", rendered.clone(), None);
    cx.emit(
        "charge.refunded",
        charge_json,
        Some(json!({ "amount_refunded": charge.amount_refunded, "refunded": charge.refunded() })),
    );
    cx.effect(
        "refund.created",
        &id,
        Some(format!("{} of {charge_id}", money(amount, &charge.currency))),
    );
    Ok(rendered)
}

/// Moves a refund on, as the bank would later: `pending` becomes `succeeded`; a
/// `pm_card_refundFail` refund becomes `failed` and its amount goes back on the charge.
pub(crate) fn settle(cx: &mut Ctx<'_>, id: &str) -> StripeResult<Value> {
    let refund = cx
        .st
        .refunds
        .get(id)
        .cloned()
        .ok_or_else(|| StripeError::no_such("refund", id, "refund"))?;
    let behaviour = cx.st.charges.get(&refund.charge).map(|c| c.behaviour());
    let (status, failed) = match (refund.status.as_str(), behaviour) {
        ("pending", _) => ("succeeded", false),
        ("succeeded", Some(Behaviour::RefundFails)) => ("failed", true),
        _ => return Ok(refund.render()),
    };
    let previous = json!({ "status": refund.status });
    let rendered = {
        let r = cx
            .st
            .refunds
            .get_mut(id)
            .ok_or_else(|| StripeError::no_such("refund", id, "refund"))?;
        r.status = status.into();
        if failed {
            r.failure_reason = Some("expired_or_canceled_card".into());
        }
        r.render()
    };
    if failed {
        if let Some(c) = cx.st.charges.get_mut(&refund.charge) {
            c.amount_refunded -= refund.amount;
        }
        cx.emit("refund.failed", rendered.clone(), Some(previous.clone()));
    }
    cx.emit("refund.updated", rendered.clone(), Some(previous.clone()));
    cx.emit("charge.refund.updated", rendered.clone(), Some(previous));
    cx.effect(&format!("refund.{status}"), id, None);
    Ok(rendered)
}

pub(crate) fn retrieve(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    cx.st
        .refunds
        .get(&path[1])
        .map(Refund::render)
        .ok_or_else(|| StripeError::no_such("refund", &path[1], "id"))
}

pub(crate) fn update(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["metadata"])?;
    let metadata = p.metadata()?;
    let refund = cx
        .st
        .refunds
        .get_mut(&path[1])
        .ok_or_else(|| StripeError::no_such("refund", &path[1], "id"))?;
    metadata.apply(&mut refund.metadata)?;
    let rendered = refund.render();
    cx.emit("refund.updated", rendered.clone(), None);
    Ok(rendered)
}

pub(crate) fn list(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "charge",
        "payment_intent",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let charge = p.str("charge")?;
    let intent = p.str("payment_intent")?;
    let items = cx
        .st
        .refunds
        .newest_first()
        .filter(|r| charge.as_ref().is_none_or(|c| *c == r.charge))
        .filter(|r| intent.is_none() || r.payment_intent == intent)
        .map(|r| (r.id.clone(), r.render()))
        .collect();
    page("/v1/refunds", "refund", items, p)
}
