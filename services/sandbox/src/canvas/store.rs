//! The FHIR resources, per type in creation order (the order searches return them in).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{fields::timestamp, resources::Kind};

#[derive(Clone, Default)]
pub(crate) struct Store {
    by_kind: HashMap<Kind, Vec<Value>>,
    /// Canvas MRNs are nine digits; handed out in sequence so every run sees the same ones.
    next_mrn: u64,
}

impl Store {
    pub(crate) fn all(&self, kind: Kind) -> &[Value] {
        self.by_kind.get(&kind).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn get(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.all(kind)
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
    }

    pub(crate) fn exists(&self, kind: Kind, id: &str) -> bool {
        self.get(kind, id).is_some()
    }

    /// Stores a new resource as version 1 and returns its id. A resource that arrives with an id
    /// (the seed) keeps it; otherwise it gets 32 lowercase hex characters, like Canvas's keys.
    pub(crate) fn insert(&mut self, kind: Kind, mut resource: Value, now: DateTime<Utc>) -> String {
        let id = match resource.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        resource["id"] = json!(id);
        resource["meta"] = json!({ "versionId": "1", "lastUpdated": timestamp(now) });
        self.by_kind.entry(kind).or_default().push(resource);
        id
    }

    /// Replaces a stored resource with the next version. False if there is no such resource.
    pub(crate) fn replace(&mut self, kind: Kind, id: &str, mut resource: Value, now: DateTime<Utc>) -> bool {
        let Some(slot) = self
            .by_kind
            .get_mut(&kind)
            .and_then(|all| all.iter_mut().find(|r| r.get("id").and_then(Value::as_str) == Some(id)))
        else {
            return false;
        };
        let version = slot
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        resource["id"] = json!(id);
        resource["meta"] = json!({ "versionId": (version + 1).to_string(), "lastUpdated": timestamp(now) });
        *slot = resource;
        true
    }

    pub(crate) fn next_mrn(&mut self) -> String {
        self.next_mrn += 1;
        format!("{:09}", 700_000_000 + self.next_mrn)
    }
}
