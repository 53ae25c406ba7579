//! `/v1/payment_methods` (stripe.md §2.3). Only test cards exist: a magic id such as `pm_card_visa`
//! becomes a fresh `pm_...` object the first time a request uses it, as Stripe does.

use chrono::Datelike;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{customers, new_id, page, Row};
use crate::stripe::{
    cards::{self, Behaviour, TestCard},
    errors::{StripeError, StripeResult},
    form::{Metadata, Params},
    Ctx,
};

#[derive(Clone, Debug)]
pub(crate) struct PaymentMethod {
    pub(crate) id: String,
    created: i64,
    pub(crate) customer: Option<String>,
    metadata: Metadata,
    billing_details: Value,
    pub(crate) card: &'static TestCard,
    exp_year: i64,
    /// Set up for later off-session use by a succeeded SetupIntent (or a payment that saved it).
    pub(crate) set_up: bool,
}

impl Row for PaymentMethod {
    fn id(&self) -> &str {
        &self.id
    }
}

impl PaymentMethod {
    pub(crate) fn render(&self) -> Value {
        let card = self.card;
        let fingerprint: String = hex::encode(Sha256::digest(card.token.as_bytes()))
            .chars()
            .take(16)
            .collect();
        json!({
            "id": self.id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": self.billing_details,
            "card": {
                "brand": card.brand,
                "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass" },
                "country": "US",
                "display_brand": card.brand,
                "exp_month": 12,
                "exp_year": self.exp_year,
                "fingerprint": fingerprint,
                "funding": card.funding,
                "generated_from": null,
                "last4": card.last4,
                "networks": { "available": [card.brand], "preferred": null },
                "regulated_status": "unregulated",
                "three_d_secure_usage": { "supported": true },
                "wallet": null,
            },
            "created": self.created,
            "customer": self.customer,
            "livemode": false,
            "metadata": self.metadata,
            "type": "card",
        })
    }
}

fn empty_billing_details() -> Value {
    json!({
        "address": { "city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null },
        "email": null,
        "name": null,
        "phone": null,
    })
}

/// The PaymentMethod a parameter names: an existing `pm_...`, or a magic test id turned into a new
/// one (once per request). 404 naming `param` otherwise.
pub(crate) fn resolve(cx: &mut Ctx<'_>, given: &str, param: &str) -> StripeResult<String> {
    if cx.st.payment_methods.get(given).is_some() {
        return Ok(given.to_owned());
    }
    if let Some(id) = cx.magic.get(given) {
        return Ok(id.clone());
    }
    let Some(card) = cards::lookup(given) else {
        return Err(StripeError::no_such("PaymentMethod", given, param));
    };
    let id = new_id("pm_", 24);
    cx.st.payment_methods.insert(PaymentMethod {
        id: id.clone(),
        created: cx.now,
        customer: None,
        metadata: Metadata::new(),
        billing_details: empty_billing_details(),
        card,
        exp_year: i64::from(chrono::Utc::now().year()) + 3,
        set_up: false,
    });
    cx.magic.insert(given.to_owned(), id.clone());
    Ok(id)
}

pub(crate) fn get<'a>(cx: &'a Ctx<'_>, id: &str) -> StripeResult<&'a PaymentMethod> {
    cx.st
        .payment_methods
        .get(id)
        .ok_or_else(|| StripeError::no_such("PaymentMethod", id, "payment_method"))
}

/// Whether `pm` may be attached to `customer`: the decline cards refuse (402), and a card
/// belongs to one customer only.
pub(crate) fn check_attachable(cx: &Ctx<'_>, pm: &str, customer: &str) -> StripeResult<()> {
    let method = get(cx, pm)?;
    if let Behaviour::Declines(decline) = &method.card.behaviour {
        return Err(StripeError::card(decline).with("payment_method", method.render()));
    }
    match &method.customer {
        Some(c) if c != customer => Err(StripeError::invalid(
            "The payment method you provided has already been attached to a customer.",
        )
        .with("param", "payment_method")),
        _ => Ok(()),
    }
}

/// Attaches (after [`check_attachable`]); a card already on this customer is left as it is.
pub(crate) fn attach_to(cx: &mut Ctx<'_>, pm: &str, customer: &str) {
    let Some(method) = cx.st.payment_methods.get_mut(pm) else {
        return;
    };
    if method.customer.as_deref() == Some(customer) {
        return;
    }
    method.customer = Some(customer.to_owned());
    let rendered = method.render();
    cx.emit("payment_method.attached", rendered, None);
    cx.effect("payment_method.attached", pm, Some(format!("customer {customer}")));
}

pub(crate) fn retrieve(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    let id = resolve(cx, &path[1], "payment_method")?;
    Ok(get(cx, &id)?.render())
}

pub(crate) fn update(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["metadata", "billing_details", "allow_redisplay"])?;
    let metadata = p.metadata()?;
    let billing = p.object("billing_details")?;
    let id = path[1].clone();
    let method = cx
        .st
        .payment_methods
        .get_mut(&id)
        .ok_or_else(|| StripeError::no_such("PaymentMethod", &id, "payment_method"))?;
    let old = method.render();
    metadata.apply(&mut method.metadata)?;
    if let Some(Value::Object(b)) = billing {
        for (k, v) in b {
            match (k.as_str(), v) {
                ("address", Value::Object(given)) => {
                    for (ak, av) in given {
                        method.billing_details["address"][ak.as_str()] = av;
                    }
                }
                ("email" | "name" | "phone", v) => method.billing_details[k.as_str()] = v,
                _ => {}
            }
        }
    }
    let new = method.render();
    if let Some(previous) = customers::previous_attributes(&old, &new) {
        cx.emit("payment_method.updated", new.clone(), Some(previous));
    }
    Ok(new)
}

/// `POST /v1/payment_methods/{pm}/attach` with `customer`.
pub(crate) fn attach(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["customer"])?;
    let customer = p.required_str("customer")?;
    customers::find(cx, &customer, "customer")?;
    let id = resolve(cx, &path[1], "payment_method")?;
    check_attachable(cx, &id, &customer)?;
    attach_to(cx, &id, &customer);
    Ok(get(cx, &id)?.render())
}

/// `POST /v1/payment_methods/{pm}/detach`.
pub(crate) fn detach(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    let id = path[1].clone();
    let method = cx
        .st
        .payment_methods
        .get_mut(&id)
        .ok_or_else(|| StripeError::no_such("PaymentMethod", &id, "payment_method"))?;
    let Some(customer) = method.customer.take() else {
        return Err(StripeError::invalid(
            "The payment method you provided is not attached to a customer so detachment is impossible.",
        ));
    };
    method.set_up = false;
    let rendered = method.render();
    if let Some(c) = cx.st.customers.get_mut(&customer) {
        if c.default_payment_method.as_deref() == Some(id.as_str()) {
            c.default_payment_method = None;
        }
    }
    cx.emit(
        "payment_method.detached",
        rendered.clone(),
        Some(json!({ "customer": customer })),
    );
    cx.effect("payment_method.detached", &id, Some(format!("customer {customer}")));
    Ok(rendered)
}

/// `GET /v1/payment_methods?customer=...&type=card`.
pub(crate) fn list(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&["customer", "type", "limit", "starting_after", "ending_before"])?;
    let customer = p.str("customer")?;
    let kind = p.str("type")?;
    let items = cx
        .st
        .payment_methods
        .newest_first()
        .filter(|pm| customer.is_none() || pm.customer == customer)
        .filter(|_| kind.as_deref().is_none_or(|k| k == "card"))
        .map(|pm| (pm.id.clone(), pm.render()))
        .collect();
    page("/v1/payment_methods", "payment_method", items, p)
}
