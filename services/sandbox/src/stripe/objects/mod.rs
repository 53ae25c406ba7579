//! Stripe's resources: storage, routing, lists, `expand`, and the handlers per resource.

use std::collections::HashMap;

use http::Method;
use rand::{distributions::Alphanumeric, Rng};
use serde_json::{json, Value};

use super::{
    errors::{StripeError, StripeResult},
    form::Params,
    Ctx, State,
};

pub(crate) mod coupons;
pub(crate) mod customers;
pub(crate) mod events;
pub(crate) mod payment_intents;
pub(crate) mod payment_methods;
pub(crate) mod refunds;
pub(crate) mod setup_intents;

/// A route's work: the request context, its parameters, and the decoded path after `/v1/`.
pub(crate) type Handler = fn(&mut Ctx<'_>, &Params, &[String]) -> StripeResult<Value>;

/// The handler for a method and path, or `None` for a URL Stripe does not recognise.
pub(crate) fn route(method: &Method, segments: &[String]) -> Option<Handler> {
    use coupons as co;
    use customers as cu;
    use payment_intents as pi;
    use payment_methods as pm;
    use refunds as re;
    use setup_intents as si;
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    let handler: Handler = match s.as_slice() {
        ["customers"] if get => cu::list,
        ["customers"] if post => cu::create,
        ["customers", _] if get => cu::retrieve,
        ["customers", _] if post => cu::update,
        ["customers", _] if delete => cu::delete,
        ["customers", _, "payment_methods"] if get => cu::payment_methods,
        ["customers", _, "payment_methods", _] if get => cu::payment_method,
        ["setup_intents"] if get => si::list,
        ["setup_intents"] if post => si::create,
        ["setup_intents", _] if get => si::retrieve,
        ["setup_intents", _] if post => si::update,
        ["setup_intents", _, "confirm"] if post => si::confirm,
        ["setup_intents", _, "cancel"] if post => si::cancel,
        ["payment_methods"] if get => pm::list,
        ["payment_methods", _] if get => pm::retrieve,
        ["payment_methods", _] if post => pm::update,
        ["payment_methods", _, "attach"] if post => pm::attach,
        ["payment_methods", _, "detach"] if post => pm::detach,
        ["payment_intents"] if get => pi::list,
        ["payment_intents"] if post => pi::create,
        ["payment_intents", _] if get => pi::retrieve,
        ["payment_intents", _] if post => pi::update,
        ["payment_intents", _, "confirm"] if post => pi::confirm,
        ["payment_intents", _, "cancel"] if post => pi::cancel,
        ["payment_intents", _, "capture"] if post => pi::capture,
        ["charges"] if get => pi::list_charges,
        ["charges", _] if get => pi::retrieve_charge,
        ["refunds"] if get => re::list,
        ["refunds"] if post => re::create,
        ["refunds", _] if get => re::retrieve,
        ["refunds", _] if post => re::update,
        ["coupons"] if get => co::list,
        ["coupons"] if post => co::create,
        ["coupons", _] if get => co::retrieve,
        ["coupons", _] if post => co::update,
        ["coupons", _] if delete => co::delete,
        ["promotion_codes"] if get => co::list_promotion_codes,
        ["promotion_codes"] if post => co::create_promotion_code,
        ["promotion_codes", _] if get => co::retrieve_promotion_code,
        ["promotion_codes", _] if post => co::update_promotion_code,
        ["events"] if get => events::list,
        ["events", _] if get => events::retrieve,
        _ => return None,
    };
    Some(handler)
}

/// Something with a Stripe id.
pub(crate) trait Row {
    fn id(&self) -> &str;
}

/// Rows in creation order, found by id.
#[derive(Debug)]
pub(crate) struct Table<T> {
    rows: Vec<T>,
    index: HashMap<String, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Row> Table<T> {
    pub(crate) fn insert(&mut self, row: T) {
        let id = row.id().to_owned();
        if let Some(&i) = self.index.get(&id) {
            self.rows[i] = row;
        } else {
            self.index.insert(id, self.rows.len());
            self.rows.push(row);
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.index.get(id).map(|&i| &self.rows[i])
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.index.get(id).map(|&i| &mut self.rows[i])
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        let i = self.index.remove(id)?;
        let row = self.rows.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        Some(row)
    }

    /// Oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.rows.iter()
    }

    /// Newest first, the order Stripe lists in.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &T> {
        self.rows.iter().rev()
    }
}

/// A random id such as `cus_` followed by `len` letters and digits.
pub(crate) fn new_id(prefix: &str, len: usize) -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// `<id>_secret_<random>`, Stripe's client secret shape.
pub(crate) fn client_secret(id: &str) -> String {
    new_id(&format!("{id}_secret_"), 25)
}

/// A page of a list: `limit` (1..=100, default 10), `starting_after`, `ending_before`; `items` are
/// newest first and already filtered. `object` names the resource in "No such ..." errors.
pub(crate) fn page(url: &str, object: &str, items: Vec<(String, Value)>, p: &Params) -> StripeResult<Value> {
    let limit = p.int("limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(StripeError::param(
            "parameter_invalid_integer",
            "Invalid limit: must be between 1 and 100".to_owned(),
            "limit",
        ));
    }
    let limit = limit as usize;
    let position = |param: &str| -> StripeResult<Option<usize>> {
        match p.str(param)? {
            None => Ok(None),
            Some(id) => items
                .iter()
                .position(|(i, _)| *i == id)
                .map(Some)
                .ok_or_else(|| StripeError::no_such(object, &id, param)),
        }
    };
    let (slice, has_more) = if let Some(after) = position("starting_after")? {
        let rest = &items[after + 1..];
        (&rest[..rest.len().min(limit)], rest.len() > limit)
    } else if let Some(before) = position("ending_before")? {
        let rest = &items[..before];
        let start = rest.len().saturating_sub(limit);
        (&rest[start..], start > 0)
    } else {
        (&items[..items.len().min(limit)], items.len() > limit)
    };
    let data: Vec<Value> = slice.iter().map(|(_, v)| v.clone()).collect();
    Ok(json!({ "object": "list", "data": data, "has_more": has_more, "url": url }))
}

impl State {
    /// Any object by id (its prefix says which kind), as `expand` replaces an id with it.
    pub(crate) fn render_any(&self, id: &str) -> Option<Value> {
        let prefix = id.split('_').next().unwrap_or("");
        match prefix {
            "cus" => self.customers.get(id).map(customers::Customer::render),
            "pm" => self.payment_methods.get(id).map(payment_methods::PaymentMethod::render),
            "seti" => self.setup_intents.get(id).map(setup_intents::SetupIntent::render),
            "pi" => self.payment_intents.get(id).map(payment_intents::PaymentIntent::render),
            "ch" => self.charges.get(id).map(|c| c.render(self)),
            "re" => self.refunds.get(id).map(refunds::Refund::render),
            "promo" => self.promotion_codes.get(id).map(|p| p.render(self)),
            "evt" => self.events.get(id).map(|e| e.event.clone()),
            _ => self.coupons.get(id).map(coupons::Coupon::render),
        }
    }
}

/// Replaces ids with their objects along each dotted `expand` path (`latest_charge`,
/// `data.customer`, `payment_intent.latest_charge`). Paths that name nothing expandable are left.
pub(crate) fn expand(value: &mut Value, paths: &[String], st: &State) {
    for path in paths {
        let segs: Vec<&str> = path.split('.').collect();
        expand_path(value, &segs, st);
    }
}

fn expand_path(value: &mut Value, segs: &[&str], st: &State) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    let Some(field) = value.as_object_mut().and_then(|o| o.get_mut(*first)) else {
        return;
    };
    if let Value::String(id) = field {
        if let Some(full) = st.render_any(id) {
            *field = full;
        }
    }
    if rest.is_empty() {
        return;
    }
    match field {
        Value::Array(items) => {
            for item in items {
                expand_path(item, rest, st);
            }
        }
        Value::Object(_) => expand_path(field, rest, st),
        _ => {}
    }
}

/// An amount as Stripe words it in messages: `$12.34`.
pub(crate) fn money(amount: i64, currency: &str) -> String {
    const ZERO_DECIMAL: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    ];
    let symbol = match currency {
        "usd" | "cad" | "aud" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        _ => "",
    };
    let number = if ZERO_DECIMAL.contains(&currency) {
        amount.to_string()
    } else {
        format!("{}.{:02}", amount / 100, (amount % 100).abs())
    };
    if symbol.is_empty() {
        format!("{number} {}", currency.to_uppercase())
    } else {
        format!("{symbol}{number}")
    }
}

/// A currency parameter: three letters, stored lowercase.
pub(crate) fn currency(p: &Params, name: &str) -> StripeResult<Option<String>> {
    match p.str(name)? {
        None => Ok(None),
        Some(c) if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => Ok(Some(c.to_ascii_lowercase())),
        Some(c) => Err(StripeError::param(
            "parameter_invalid_string",
            format!(
                "Invalid currency: {}. Stripe currently supports these currencies: usd, eur, gbp, cad, aud, ...",
                c.to_lowercase()
            ),
            name,
        )),
    }
}

/// The `{ "object": ..., "id": ..., "deleted": true }` answer of a DELETE.
pub(crate) fn deleted(object: &str, id: &str) -> Value {
    json!({ "id": id, "object": object, "deleted": true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_like_stripe() {
        assert_eq!(money(5000, "usd"), "$50.00");
        assert_eq!(money(1999, "eur"), "€19.99");
        assert_eq!(money(500, "jpy"), "¥500");
        assert_eq!(money(105, "chf"), "1.05 CHF");
    }

    #[test]
    fn pages_walk_forward_and_back() {
        let items: Vec<(String, Value)> = (0..5).rev().map(|i| (format!("x{i}"), json!(i))).collect();
        let p = Params::decode(&["limit=2"]);
        let first = page("/v1/x", "x", items.clone(), &p).unwrap();
        assert_eq!(first["data"], json!([4, 3]));
        assert_eq!(first["has_more"], true);
        let p = Params::decode(&["limit=2&starting_after=x3"]);
        assert_eq!(page("/v1/x", "x", items.clone(), &p).unwrap()["data"], json!([2, 1]));
        let p = Params::decode(&["limit=2&starting_after=x1"]);
        let last = page("/v1/x", "x", items.clone(), &p).unwrap();
        assert_eq!(
            (last["data"].clone(), last["has_more"].clone()),
            (json!([0]), json!(false))
        );
        let p = Params::decode(&["limit=2&ending_before=x1"]);
        assert_eq!(page("/v1/x", "x", items.clone(), &p).unwrap()["data"], json!([3, 2]));
        let p = Params::decode(&["starting_after=nope"]);
        assert_eq!(page("/v1/x", "x", items, &p).unwrap_err().status, 404);
    }
}
