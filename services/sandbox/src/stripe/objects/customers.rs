//! `/v1/customers` (stripe.md §2.1): create, retrieve, update, delete, list, and a customer's
//! PaymentMethods.

use serde_json::{json, Value};

use super::{deleted, new_id, page, payment_methods, Row};
use crate::stripe::{
    errors::{StripeError, StripeResult},
    form::{Metadata, Params},
    Ctx,
};

#[derive(Clone, Debug)]
pub(crate) struct Customer {
    pub(crate) id: String,
    created: i64,
    email: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    description: Option<String>,
    address: Option<Value>,
    shipping: Option<Value>,
    metadata: Metadata,
    pub(crate) default_payment_method: Option<String>,
    preferred_locales: Vec<String>,
    tax_exempt: String,
    invoice_prefix: String,
    pub(crate) deleted: bool,
}

impl Row for Customer {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Customer {
    pub(crate) fn render(&self) -> Value {
        if self.deleted {
            return deleted("customer", &self.id);
        }
        json!({
            "id": self.id,
            "object": "customer",
            "address": self.address,
            "balance": 0,
            "created": self.created,
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": self.description,
            "discount": null,
            "email": self.email,
            "invoice_prefix": self.invoice_prefix,
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": self.default_payment_method,
                "footer": null,
                "rendering_options": null,
            },
            "livemode": false,
            "metadata": self.metadata,
            "name": self.name,
            "next_invoice_sequence": 1,
            "phone": self.phone,
            "preferred_locales": self.preferred_locales,
            "shipping": self.shipping,
            "tax_exempt": self.tax_exempt,
            "test_clock": null,
        })
    }
}

const WRITABLE: &[&str] = &[
    "address",
    "description",
    "email",
    "invoice_settings",
    "metadata",
    "name",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
];

/// A live (not deleted) customer, or Stripe's 404 naming `param`.
pub(crate) fn find<'a>(cx: &'a Ctx<'_>, id: &str, param: &str) -> StripeResult<&'a Customer> {
    cx.st
        .customers
        .get(id)
        .filter(|c| !c.deleted)
        .ok_or_else(|| StripeError::no_such("customer", id, param))
}

fn email(p: &Params) -> StripeResult<Option<Option<String>>> {
    let e = p.patch_str("email")?;
    if let Some(Some(e)) = &e {
        let ok = e.len() <= 512
            && !e.contains(char::is_whitespace)
            && e.split_once('@').is_some_and(|(u, d)| !u.is_empty() && !d.is_empty());
        if !ok {
            return Err(StripeError::param(
                "email_invalid",
                format!("Invalid email address: {e}"),
                "email",
            ));
        }
    }
    Ok(e)
}

/// Validated changes a create or update asks for, applied only once everything checked out.
struct Changes {
    email: Option<Option<String>>,
    name: Option<Option<String>>,
    phone: Option<Option<String>>,
    description: Option<Option<String>>,
    address: Option<Value>,
    shipping: Option<Value>,
    preferred_locales: Option<Vec<String>>,
    tax_exempt: Option<String>,
    metadata: crate::stripe::form::MetadataUpdate,
}

fn changes(p: &Params) -> StripeResult<Changes> {
    let address = p.object("address")?.map(address_of);
    let shipping = p.object("shipping")?.map(|s| {
        if s.is_null() {
            return s;
        }
        json!({
            "address": address_of(s.get("address").cloned().unwrap_or(Value::Null)),
            "name": s.get("name"),
            "phone": s.get("phone"),
        })
    });
    Ok(Changes {
        email: email(p)?,
        name: p.patch_str("name")?,
        phone: p.patch_str("phone")?,
        description: p.patch_str("description")?,
        address,
        shipping,
        preferred_locales: p
            .has("preferred_locales")
            .then(|| p.list("preferred_locales"))
            .transpose()?,
        tax_exempt: p.choice("tax_exempt", &["none", "exempt", "reverse"])?,
        metadata: p.metadata()?,
    })
}

/// Stripe's address shape: every key present, unknown ones dropped.
fn address_of(given: Value) -> Value {
    if given.is_null() {
        return given;
    }
    let field = |k: &str| given.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "city": field("city"),
        "country": field("country"),
        "line1": field("line1"),
        "line2": field("line2"),
        "postal_code": field("postal_code"),
        "state": field("state"),
    })
}

impl Changes {
    fn apply(self, c: &mut Customer) -> StripeResult<()> {
        self.metadata.apply(&mut c.metadata)?;
        for (slot, value) in [
            (&mut c.email, self.email),
            (&mut c.name, self.name),
            (&mut c.phone, self.phone),
            (&mut c.description, self.description),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(a) = self.address {
            c.address = Some(a).filter(|a| !a.is_null());
        }
        if let Some(s) = self.shipping {
            c.shipping = Some(s).filter(|s| !s.is_null());
        }
        if let Some(l) = self.preferred_locales {
            c.preferred_locales = l;
        }
        if let Some(t) = self.tax_exempt {
            c.tax_exempt = t;
        }
        Ok(())
    }
}

/// `invoice_settings[default_payment_method]`, which must be attached to the customer (or be the
/// `pending` one this request attaches).
fn default_pm(cx: &Ctx<'_>, p: &Params, customer: &str, pending: Option<&str>) -> StripeResult<Option<Option<String>>> {
    let param = "invoice_settings[default_payment_method]";
    if !p.has("invoice_settings") {
        return Ok(None);
    }
    let Some(given) = p.nested_str("invoice_settings", "default_payment_method")? else {
        return Ok(Some(None));
    };
    let id = cx.magic.get(&given).cloned().unwrap_or(given);
    let attached = pending == Some(id.as_str())
        || cx
            .st
            .payment_methods
            .get(&id)
            .is_some_and(|pm| pm.customer.as_deref() == Some(customer));
    if !attached {
        return Err(StripeError::invalid_code(
            "resource_missing",
            format!(
                "No such PaymentMethod: '{id}'; It's possible this PaymentMethod exists on one of your connected accounts, \
                 in which case you should retry this request on that connected account."
            ),
            Some(param),
        ));
    }
    Ok(Some(Some(id)))
}

pub(crate) fn create(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    let mut allowed = WRITABLE.to_vec();
    allowed.push("payment_method");
    p.allow(&allowed)?;
    let changes = changes(p)?;
    let id = new_id("cus_", 14);
    // The card is checked before the customer exists: a declined card fails the whole create.
    let pm = match p.str("payment_method")? {
        Some(r) => {
            let pm = payment_methods::resolve(cx, &r, "payment_method")?;
            payment_methods::check_attachable(cx, &pm, &id)?;
            Some(pm)
        }
        None => None,
    };
    let default = default_pm(cx, p, &id, pm.as_deref())?;
    let mut customer = Customer {
        id: id.clone(),
        created: cx.now,
        email: None,
        name: None,
        phone: None,
        description: None,
        address: None,
        shipping: None,
        metadata: Metadata::new(),
        default_payment_method: None,
        preferred_locales: Vec::new(),
        tax_exempt: "none".into(),
        invoice_prefix: new_id("", 8).to_uppercase(),
        deleted: false,
    };
    changes.apply(&mut customer)?;
    customer.default_payment_method = default.flatten();
    let rendered = customer.render();
    cx.st.customers.insert(customer);
    cx.emit("customer.created", rendered.clone(), None);
    cx.effect("customer.created", &id, None);
    if let Some(pm) = &pm {
        payment_methods::attach_to(cx, pm, &id);
    }
    Ok(rendered)
}

pub(crate) fn retrieve(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    cx.st
        .customers
        .get(&path[1])
        .map(Customer::render)
        .ok_or_else(|| StripeError::no_such("customer", &path[1], "id"))
}

pub(crate) fn update(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(WRITABLE)?;
    let id = path[1].clone();
    let before = find(cx, &id, "id")?.clone();
    let changes = changes(p)?;
    let default = default_pm(cx, p, &id, None)?;
    let mut next = before.clone();
    changes.apply(&mut next)?;
    if let Some(default) = default {
        next.default_payment_method = default;
    }
    let (old, new) = (before.render(), next.render());
    cx.st.customers.insert(next);
    if let Some(previous) = previous_attributes(&old, &new) {
        cx.emit("customer.updated", new.clone(), Some(previous));
    }
    Ok(new)
}

pub(crate) fn delete(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    let id = path[1].clone();
    let rendered = find(cx, &id, "id")?.render();
    if let Some(c) = cx.st.customers.get_mut(&id) {
        c.deleted = true;
    }
    cx.emit("customer.deleted", rendered, None);
    Ok(deleted("customer", &id))
}

pub(crate) fn list(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&["email", "limit", "starting_after", "ending_before", "created"])?;
    let email = p.str("email")?;
    let items = cx
        .st
        .customers
        .newest_first()
        .filter(|c| !c.deleted && email.as_ref().is_none_or(|e| c.email.as_ref() == Some(e)))
        .map(|c| (c.id.clone(), c.render()))
        .collect();
    page("/v1/customers", "customer", items, p)
}

/// `GET /v1/customers/{id}/payment_methods`.
pub(crate) fn payment_methods(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["type", "limit", "starting_after", "ending_before", "allow_redisplay"])?;
    let id = path[1].clone();
    find(cx, &id, "customer")?;
    let kind = p.str("type")?;
    let items = cx
        .st
        .payment_methods
        .newest_first()
        .filter(|pm| pm.customer.as_deref() == Some(id.as_str()) && kind.as_deref().is_none_or(|k| k == "card"))
        .map(|pm| (pm.id.clone(), pm.render()))
        .collect();
    page(
        &format!("/v1/customers/{id}/payment_methods"),
        "payment_method",
        items,
        p,
    )
}

/// `GET /v1/customers/{id}/payment_methods/{pm}`.
pub(crate) fn payment_method(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[])?;
    find(cx, &path[1], "customer")?;
    cx.st
        .payment_methods
        .get(&path[3])
        .filter(|pm| pm.customer.as_deref() == Some(path[1].as_str()))
        .map(|pm| pm.render())
        .ok_or_else(|| StripeError::no_such("PaymentMethod", &path[3], "payment_method"))
}

/// The top-level fields that changed, with their old values (an event's `previous_attributes`).
pub(crate) fn previous_attributes(old: &Value, new: &Value) -> Option<Value> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return None;
    };
    let changed: serde_json::Map<String, Value> = old
        .iter()
        .filter(|(k, v)| new.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!changed.is_empty()).then_some(Value::Object(changed))
}
