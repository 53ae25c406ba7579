//! `/v1/setup_intents` (stripe.md §2.2): create (optionally confirming), retrieve, update, confirm,
//! cancel, list. Success attaches the card to the intent's customer and marks it set up for
//! off-session use; the decline cards fail with a 402 carrying the SetupIntent; 3D Secure cards
//! wait in `requires_action` until `/_sandbox/stripe/setup_intents/{id}/authenticate`.

use serde_json::{json, Value};

use super::{client_secret, customers, new_id, page, payment_methods, Row};
use crate::stripe::{
    cards::Behaviour,
    errors::{StripeError, StripeResult},
    form::{Metadata, Params},
    Ctx,
};

#[derive(Clone, Debug)]
pub(crate) struct SetupIntent {
    pub(crate) id: String,
    created: i64,
    client_secret: String,
    customer: Option<String>,
    description: Option<String>,
    metadata: Metadata,
    payment_method: Option<String>,
    payment_method_types: Vec<String>,
    automatic_payment_methods: Option<Value>,
    usage: String,
    pub(crate) status: String,
    last_setup_error: Option<Value>,
    next_action: Option<Value>,
    latest_attempt: Option<String>,
    cancellation_reason: Option<String>,
}

impl Row for SetupIntent {
    fn id(&self) -> &str {
        &self.id
    }
}

impl SetupIntent {
    pub(crate) fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "setup_intent",
            "application": null,
            "automatic_payment_methods": self.automatic_payment_methods,
            "cancellation_reason": self.cancellation_reason,
            "client_secret": self.client_secret,
            "created": self.created,
            "customer": self.customer,
            "description": self.description,
            "flow_directions": null,
            "last_setup_error": self.last_setup_error,
            "latest_attempt": self.latest_attempt,
            "livemode": false,
            "mandate": null,
            "metadata": self.metadata,
            "next_action": self.next_action,
            "on_behalf_of": null,
            "payment_method": self.payment_method,
            "payment_method_configuration_details": null,
            "payment_method_options": {
                "card": { "mandate_options": null, "network": null, "request_three_d_secure": "automatic" }
            },
            "payment_method_types": self.payment_method_types,
            "single_use_mandate": null,
            "status": self.status,
            "usage": self.usage,
        })
    }
}

/// The `next_action` of an intent waiting for 3D Secure.
pub(crate) fn three_d_secure_action() -> Value {
    json!({
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "type": "three_d_secure_redirect",
            "stripe_js": "https://hooks.stripe.com/redirect/authenticate/src_sandbox",
            "source": "src_sandbox",
        },
    })
}

/// `automatic_payment_methods[..]` as given, and whether it may redirect (which needs a `return_url`).
pub(crate) fn automatic_payment_methods(p: &Params) -> StripeResult<Option<(Value, bool)>> {
    let Some(enabled) = p.nested_str("automatic_payment_methods", "enabled")? else {
        return Ok(None);
    };
    let enabled = match enabled.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(StripeError::param(
                "parameter_invalid_boolean",
                format!("Invalid boolean: {other}"),
                "automatic_payment_methods[enabled]",
            ))
        }
    };
    let allow_redirects = p
        .nested_str("automatic_payment_methods", "allow_redirects")?
        .unwrap_or_else(|| "always".into());
    let value = json!({ "allow_redirects": allow_redirects, "enabled": enabled });
    Ok(Some((value, enabled && allow_redirects != "never")))
}

/// The 400 live Stripe gives a redirect-capable intent confirmed without a `return_url`.
pub(crate) fn return_url_required(object: &str) -> StripeError {
    let mut e = StripeError::invalid(format!(
        "This {object} is configured to accept payment methods enabled in your Dashboard. Because some of these payment \
         methods might redirect your customer off of your page, you must provide a `return_url`. If you don't want to \
         accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and \
         `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents."
    ));
    e.validation = true;
    e
}

const CREATE: &[&str] = &[
    "automatic_payment_methods",
    "confirm",
    "customer",
    "description",
    "mandate_data",
    "metadata",
    "payment_method",
    "payment_method_options",
    "payment_method_types",
    "return_url",
    "usage",
    "use_stripe_sdk",
];

pub(crate) fn create(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(CREATE)?;
    let usage = p
        .choice("usage", &["off_session", "on_session"])?
        .unwrap_or_else(|| "off_session".into());
    let confirm = p.bool("confirm")?.unwrap_or(false);
    let automatic = automatic_payment_methods(p)?;
    let mut types = p.list("payment_method_types")?;
    if types.is_empty() && automatic.is_none() {
        types.push("card".into());
    }
    if confirm && automatic.as_ref().is_some_and(|(_, redirects)| *redirects) && !p.has("return_url") {
        return Err(return_url_required("SetupIntent"));
    }
    let metadata = p.metadata()?.build()?;
    let description = p.str("description")?;
    let customer = match p.str("customer")? {
        Some(c) => Some(customers::find(cx, &c, "customer")?.id.clone()),
        None => None,
    };
    let payment_method = match p.str("payment_method")? {
        Some(r) => Some(payment_methods::resolve(cx, &r, "payment_method")?),
        None => None,
    };
    let id = new_id("seti_", 24);
    let status = if payment_method.is_some() {
        "requires_confirmation"
    } else {
        "requires_payment_method"
    };
    let intent = SetupIntent {
        id: id.clone(),
        created: cx.now,
        client_secret: client_secret(&id),
        customer,
        description,
        metadata,
        payment_method,
        payment_method_types: types,
        automatic_payment_methods: automatic.map(|(v, _)| v),
        usage,
        status: status.into(),
        last_setup_error: None,
        next_action: None,
        latest_attempt: None,
        cancellation_reason: None,
    };
    let rendered = intent.render();
    cx.st.setup_intents.insert(intent);
    cx.emit("setup_intent.created", rendered.clone(), None);
    if confirm {
        run(cx, &id)?;
    }
    Ok(render(cx, &id))
}

fn render(cx: &Ctx<'_>, id: &str) -> Value {
    cx.st.setup_intents.get(id).map(SetupIntent::render).unwrap_or_default()
}

fn find(cx: &Ctx<'_>, id: &str) -> StripeResult<SetupIntent> {
    cx.st
        .setup_intents
        .get(id)
        .cloned()
        .ok_or_else(|| StripeError::no_such("setup_intent", id, "intent"))
}

/// Tries to set the card up: succeeded (and attached), `requires_action`, or a 402.
fn run(cx: &mut Ctx<'_>, id: &str) -> StripeResult<()> {
    let intent = find(cx, id)?;
    let Some(pm) = intent.payment_method.clone() else {
        return Err(StripeError::invalid_code(
            "setup_intent_unexpected_state",
            "You cannot confirm this SetupIntent because it's missing a payment method. To confirm this SetupIntent \
             with a PaymentMethod, update the SetupIntent with a payment_method.",
            None,
        ));
    };
    let card = payment_methods::get(cx, &pm)?.card;
    if let Some(customer) = &intent.customer {
        if let Err(e) = payment_methods::check_attachable(cx, &pm, customer) {
            if e.status != 402 {
                return Err(e);
            }
        }
    }
    match &card.behaviour {
        Behaviour::Declines(decline) => {
            let method = payment_methods::get(cx, &pm)?.render();
            let error = StripeError::card(decline).with("payment_method", method);
            let intent = cx
                .st
                .setup_intents
                .get_mut(id)
                .ok_or_else(|| StripeError::invalid("gone"))?;
            intent.status = "requires_payment_method".into();
            intent.payment_method = None;
            intent.next_action = None;
            intent.latest_attempt = Some(new_id("setatt_", 24));
            intent.last_setup_error = Some(error.object());
            let rendered = intent.render();
            cx.emit("setup_intent.setup_failed", rendered.clone(), None);
            cx.effect("setup_intent.setup_failed", id, Some(decline.decline_code.to_owned()));
            Err(error.with("setup_intent", rendered))
        }
        Behaviour::AlwaysAuthenticate { .. } | Behaviour::AuthenticateUnlessSetUp => {
            let intent = cx
                .st
                .setup_intents
                .get_mut(id)
                .ok_or_else(|| StripeError::invalid("gone"))?;
            intent.status = "requires_action".into();
            intent.next_action = Some(three_d_secure_action());
            intent.latest_attempt = Some(new_id("setatt_", 24));
            let rendered = intent.render();
            cx.emit("setup_intent.requires_action", rendered, None);
            Ok(())
        }
        _ => {
            succeed(cx, id);
            Ok(())
        }
    }
}

/// The card is set up: attached to the intent's customer, usable off-session.
pub(crate) fn succeed(cx: &mut Ctx<'_>, id: &str) {
    let Some(intent) = cx.st.setup_intents.get_mut(id) else {
        return;
    };
    intent.status = "succeeded".into();
    intent.next_action = None;
    intent.last_setup_error = None;
    intent.latest_attempt = Some(new_id("setatt_", 24));
    let (customer, pm, usage) = (
        intent.customer.clone(),
        intent.payment_method.clone(),
        intent.usage.clone(),
    );
    if let Some(pm) = &pm {
        if let Some(customer) = &customer {
            payment_methods::attach_to(cx, pm, customer);
        }
        if let Some(method) = cx.st.payment_methods.get_mut(pm) {
            method.set_up = usage == "off_session" || method.set_up;
        }
    }
    let rendered = render(cx, id);
    cx.emit("setup_intent.succeeded", rendered, None);
    cx.effect("setup_intent.succeeded", id, pm.map(|p| format!("payment_method {p}")));
}

/// Completes 3D Secure for an intent in `requires_action` (the `/_sandbox` control).
pub(crate) fn authenticate(cx: &mut Ctx<'_>, id: &str) -> StripeResult<Value> {
    let intent = find(cx, id)?;
    if intent.status != "requires_action" {
        return Err(StripeError::invalid_code(
            "setup_intent_unexpected_state",
            format!("SetupIntent {id} has status {}, not requires_action.", intent.status),
            None,
        ));
    }
    succeed(cx, id);
    Ok(render(cx, id))
}

pub(crate) fn retrieve(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["client_secret"])?;
    Ok(find(cx, &path[1])?.render())
}

pub(crate) fn update(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "customer",
        "description",
        "metadata",
        "payment_method",
        "payment_method_types",
    ])?;
    let metadata = p.metadata()?;
    let description = p.patch_str("description")?;
    let types = p.list("payment_method_types")?;
    let mut intent = find(cx, &path[1])?;
    let old = intent.render();
    let changes_card = p.has("payment_method") || p.has("customer");
    if changes_card
        && !matches!(
            intent.status.as_str(),
            "requires_payment_method" | "requires_confirmation"
        )
    {
        return Err(unexpected(&intent, "update"));
    }
    if let Some(c) = p.str("customer")? {
        intent.customer = Some(customers::find(cx, &c, "customer")?.id.clone());
    }
    if let Some(r) = p.str("payment_method")? {
        intent.payment_method = Some(payment_methods::resolve(cx, &r, "payment_method")?);
        intent.status = "requires_confirmation".into();
    }
    metadata.apply(&mut intent.metadata)?;
    if let Some(d) = description {
        intent.description = d;
    }
    if !types.is_empty() {
        intent.payment_method_types = types;
    }
    let new = intent.render();
    cx.st.setup_intents.insert(intent);
    if let Some(previous) = customers::previous_attributes(&old, &new) {
        cx.emit("setup_intent.updated", new.clone(), Some(previous));
    }
    Ok(new)
}

fn unexpected(intent: &SetupIntent, verb: &str) -> StripeError {
    let message = if intent.status == "succeeded" && verb == "confirm" {
        "You cannot confirm this SetupIntent because it has already succeeded.".to_owned()
    } else {
        format!(
            "You cannot {verb} this SetupIntent because it has a status of {}.",
            intent.status
        )
    };
    StripeError::invalid_code("setup_intent_unexpected_state", message, None).with("setup_intent", intent.render())
}

pub(crate) fn confirm(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "payment_method",
        "return_url",
        "payment_method_options",
        "mandate_data",
        "use_stripe_sdk",
        "client_secret",
    ])?;
    let id = path[1].clone();
    let intent = find(cx, &id)?;
    if !matches!(
        intent.status.as_str(),
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    ) {
        return Err(unexpected(&intent, "confirm"));
    }
    let redirects = intent
        .automatic_payment_methods
        .as_ref()
        .is_some_and(|a| a["enabled"] == true && a["allow_redirects"] != "never");
    if redirects && !p.has("return_url") {
        return Err(return_url_required("SetupIntent"));
    }
    if let Some(r) = p.str("payment_method")? {
        let pm = payment_methods::resolve(cx, &r, "payment_method")?;
        if let Some(i) = cx.st.setup_intents.get_mut(&id) {
            i.payment_method = Some(pm);
        }
    }
    run(cx, &id)?;
    Ok(render(cx, &id))
}

pub(crate) fn cancel(cx: &mut Ctx<'_>, p: &Params, path: &[String]) -> StripeResult<Value> {
    p.allow(&["cancellation_reason"])?;
    let reason = p.choice(
        "cancellation_reason",
        &["abandoned", "duplicate", "requested_by_customer"],
    )?;
    let id = path[1].clone();
    let intent = find(cx, &id)?;
    if !matches!(
        intent.status.as_str(),
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    ) {
        return Err(unexpected(&intent, "cancel"));
    }
    let intent = cx
        .st
        .setup_intents
        .get_mut(&id)
        .ok_or_else(|| StripeError::invalid("gone"))?;
    intent.status = "canceled".into();
    intent.cancellation_reason = reason;
    intent.next_action = None;
    let rendered = intent.render();
    cx.emit("setup_intent.canceled", rendered.clone(), None);
    Ok(rendered)
}

pub(crate) fn list(cx: &mut Ctx<'_>, p: &Params, _: &[String]) -> StripeResult<Value> {
    p.allow(&[
        "customer",
        "payment_method",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let customer = p.str("customer")?;
    let pm = p.str("payment_method")?;
    let items = cx
        .st
        .setup_intents
        .newest_first()
        .filter(|i| customer.is_none() || i.customer == customer)
        .filter(|i| pm.is_none() || i.payment_method == pm)
        .map(|i| (i.id.clone(), i.render()))
        .collect();
    page("/v1/setup_intents", "setup_intent", items, p)
}
