//! FHIR search as Canvas does it: `_count`/`_offset` paging (default 10, at most 100), relative
//! paging links, comma = OR within one parameter, a repeated parameter = AND.

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::outcome::{FhirError, FhirResult};

pub(crate) const DEFAULT_COUNT: usize = 10;
pub(crate) const MAX_COUNT: usize = 100;

#[derive(Debug, Clone)]
pub(crate) struct SearchRequest {
    /// Filters in the order given, each with its raw (possibly comma-separated) value.
    filters: Vec<(String, String)>,
    /// Sort keys, each with "descending".
    pub(crate) sort: Vec<(String, bool)>,
    /// `None` when the caller gave no `_count`.
    count: Option<usize>,
    offset: usize,
    /// What the paging links repeat: everything but `_count` and `_offset`.
    link_params: Vec<(String, String)>,
}

impl SearchRequest {
    /// Checks every parameter name against `params` and every `_sort` key against `sorts`.
    pub(crate) fn parse(pairs: Vec<(String, String)>, params: &[&str], sorts: &[&str]) -> FhirResult<Self> {
        let mut req = Self {
            filters: Vec::new(),
            sort: Vec::new(),
            count: None,
            offset: 0,
            link_params: Vec::new(),
        };
        for (name, value) in pairs {
            match name.as_str() {
                "_count" => {
                    let n = value.parse::<usize>().map_err(|_| {
                        FhirError::invalid(format!("Invalid _count '{value}': expected a whole number"))
                    })?;
                    req.count = Some(n.min(MAX_COUNT));
                    continue;
                }
                "_offset" => {
                    req.offset = value.parse().map_err(|_| {
                        FhirError::invalid(format!("Invalid _offset '{value}': expected a whole number"))
                    })?;
                    continue;
                }
                "_sort" => {
                    for key in value.split(',').filter(|k| !k.is_empty()) {
                        let (key, desc) = key.strip_prefix('-').map_or((key, false), |k| (k, true));
                        if !sorts.contains(&key) {
                            return Err(FhirError::invalid(format!("Unknown _sort key '{key}'")));
                        }
                        req.sort.push((key.to_owned(), desc));
                    }
                }
                "_format" => {}
                _ if params.contains(&name.as_str()) => req.filters.push((name.clone(), value.clone())),
                _ => return Err(FhirError::invalid(format!("Unknown search parameter '{name}'"))),
            }
            req.link_params.push((name, value));
        }
        Ok(req)
    }

    /// The first value given for a parameter, for single-valued parameters such as Slot's.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.filters.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.first(name).is_some()
    }

    /// Whether a resource passes every filter: each occurrence must match (AND), and an
    /// occurrence matches when any of its comma-separated values does (OR).
    pub(crate) fn keeps(&self, mut matches: impl FnMut(&str, &str) -> FhirResult<bool>) -> FhirResult<bool> {
        for (name, raw) in &self.filters {
            let mut any = false;
            for value in split_or(raw) {
                if matches(name, &value)? {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Stable sort by the `_sort` keys; `key` reads one key of one resource.
    pub(crate) fn sort(&self, results: &mut [Value], key: impl Fn(&Value, &str) -> String) {
        if self.sort.is_empty() {
            return;
        }
        results.sort_by(|a, b| {
            self.sort.iter().fold(Ordering::Equal, |acc, (k, desc)| {
                acc.then_with(|| {
                    let o = key(a, k).cmp(&key(b, k));
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
            })
        });
    }

    /// One page of `results` as a searchset Bundle. `default_count` applies when the caller gave
    /// no `_count` (`None`: everything on one page).
    pub(crate) fn bundle(&self, resource_type: &str, results: Vec<Value>, default_count: Option<usize>) -> Value {
        let total = results.len();
        let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset", "total": total });
        // Canvas-affiliated clients read `entry` with a default, and empty results carry no links.
        if total == 0 {
            return bundle;
        }
        let count = self.count.or(default_count).unwrap_or(total.max(1));
        let entries: Vec<Value> = results
            .into_iter()
            .skip(self.offset)
            .take(count)
            .map(|r| json!({ "resource": r }))
            .collect();
        let link = |relation: &str, offset: usize| json!({ "relation": relation, "url": self.link(resource_type, count, offset) });
        let mut links = vec![link("self", self.offset), link("first", 0)];
        if count > 0 {
            let next = self.offset.saturating_add(count);
            if next < total {
                links.push(link("next", next));
            }
            links.push(link("last", (total - 1) / count * count));
        }
        bundle["link"] = Value::Array(links);
        if !entries.is_empty() {
            bundle["entry"] = Value::Array(entries);
        }
        bundle
    }

    /// A link relative to the FHIR base (Canvas's base has no path, so `/Task?...`).
    fn link(&self, resource_type: &str, count: usize, offset: usize) -> String {
        let mut query: Vec<String> = self
            .link_params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query.push(format!("_count={count}"));
        query.push(format!("_offset={offset}"));
        format!("/{resource_type}?{}", query.join("&"))
    }
}

/// Splits a parameter value on commas, honouring FHIR's `\,` escape.
fn split_or(raw: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                chars.next();
                current.push(',');
            }
            ',' => values.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    values.push(current);
    values.retain(|v| !v.is_empty());
    values
}

/// Percent-encodes a query component, leaving unreserved characters and the few that read better
/// bare in a FHIR query (`/`, `,`, `:`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b',' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn links_are_relative_and_repeat_the_filters() {
        let req = SearchRequest::parse(
            pairs(&[("label", "Rx Review"), ("status", "requested"), ("_count", "50")]),
            &["label", "status"],
            &[],
        )
        .unwrap();
        let bundle = req.bundle("Task", vec![json!({}); 120], Some(DEFAULT_COUNT));
        assert_eq!(bundle["entry"].as_array().unwrap().len(), 50);
        let next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .unwrap();
        assert_eq!(
            next["url"],
            "/Task?label=Rx%20Review&status=requested&_count=50&_offset=50"
        );
        let last = bundle["link"].as_array().unwrap().last().unwrap();
        assert_eq!(
            last["url"],
            "/Task?label=Rx%20Review&status=requested&_count=50&_offset=100"
        );
    }

    #[test]
    fn commas_split_unless_escaped() {
        assert_eq!(split_or("a,b,,c"), vec!["a", "b", "c"]);
        assert_eq!(split_or(r"Smith\, Jr,x"), vec!["Smith, Jr", "x"]);
    }

    #[test]
    fn bad_paging_and_unknown_params_are_refused() {
        assert!(SearchRequest::parse(pairs(&[("_count", "ten")]), &[], &[]).is_err());
        assert!(SearchRequest::parse(pairs(&[("_offset", "-1")]), &[], &[]).is_err());
        let err = SearchRequest::parse(pairs(&[("colour", "red")]), &[], &[]).unwrap_err();
        assert_eq!(err.text, "Unknown search parameter 'colour'");
        let capped = SearchRequest::parse(pairs(&[("_count", "500")]), &[], &[]).unwrap();
        assert_eq!(capped.count, Some(MAX_COUNT));
    }
}
