//! Reading a JSON order field by field, so a bad request is answered with the dotted path of the
//! first field at fault (`order.rxs[0].quantity`), the way both pharmacy APIs report it.

use std::ops::RangeInclusive;

use chrono::NaiveDate;
use serde_json::Value;

use crate::state::US_JURISDICTIONS;

/// The first field at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) field: String,
    pub(crate) message: String,
}

impl Invalid {
    fn new(field: String, problem: &str) -> Self {
        let message = format!("{field} {problem}");
        Self { field, message }
    }
}

pub(crate) type Checked<T> = Result<T, Invalid>;

/// Parses a request body as a JSON object.
pub(crate) fn parse(body: &[u8]) -> Checked<Value> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Invalid {
        field: String::new(),
        message: format!("the body is not valid JSON: {e}"),
    })?;
    if !value.is_object() {
        return Err(Invalid {
            field: String::new(),
            message: "the body must be a JSON object".into(),
        });
    }
    Ok(value)
}

/// One JSON object and its dotted path from the body's root.
#[derive(Clone, Debug)]
pub(crate) struct Scope<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Scope<'a> {
    pub(crate) fn root(value: &'a Value) -> Self {
        Self {
            value,
            path: String::new(),
        }
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The field, with `null` treated as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> Invalid {
        Invalid::new(self.name(key), "is required")
    }

    pub(crate) fn object(&self, key: &str) -> Checked<Scope<'a>> {
        match self.get(key) {
            None => Err(self.missing(key)),
            Some(v) if v.is_object() => Ok(Scope {
                value: v,
                path: self.name(key),
            }),
            Some(_) => Err(Invalid::new(self.name(key), "must be an object")),
        }
    }

    /// A non-empty array of objects.
    pub(crate) fn list(&self, key: &str) -> Checked<Vec<Scope<'a>>> {
        let items = match self.get(key) {
            None => return Err(self.missing(key)),
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) => return Err(Invalid::new(self.name(key), "must not be empty")),
            Some(_) => return Err(Invalid::new(self.name(key), "must be an array")),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = format!("{}[{i}]", self.name(key));
                if v.is_object() {
                    Ok(Scope { value: v, path })
                } else {
                    Err(Invalid::new(path, "must be an object"))
                }
            })
            .collect()
    }

    /// A required, non-blank string.
    pub(crate) fn text(&self, key: &str) -> Checked<&'a str> {
        self.opt_text(key)?.ok_or_else(|| self.missing(key))
    }

    /// A string if present; blank counts as absent.
    pub(crate) fn opt_text(&self, key: &str) -> Checked<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim())),
            Some(_) => Err(Invalid::new(self.name(key), "must be a string")),
        }
    }

    /// An identifier sent as a string or an integer (LifeFile ids are numbers in some integrations
    /// and strings in others).
    pub(crate) fn id(&self, key: &str) -> Checked<String> {
        self.opt_id(key)?.ok_or_else(|| self.missing(key))
    }

    pub(crate) fn opt_id(&self, key: &str) -> Checked<Option<String>> {
        match self.get(key) {
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
            Some(Value::Number(_)) => Err(Invalid::new(self.name(key), "must be a string or a whole number")),
            _ => Ok(self.opt_text(key)?.map(str::to_owned)),
        }
    }

    /// A string among `allowed` (compared case-insensitively), returned as given in `allowed`.
    pub(crate) fn one_of(&self, key: &str, allowed: &[&'static str]) -> Checked<&'static str> {
        let given = self.text(key)?;
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(given))
            .copied()
            .ok_or_else(|| Invalid::new(self.name(key), &format!("must be one of {}", allowed.join(", "))))
    }

    /// A US state or DC, as its two-letter code (returned upper-case).
    pub(crate) fn state(&self, key: &str) -> Checked<String> {
        let given = self.text(key)?.to_ascii_uppercase();
        if US_JURISDICTIONS.contains(&given.as_str()) {
            Ok(given)
        } else {
            Err(Invalid::new(self.name(key), "must be a US state's two-letter code"))
        }
    }

    /// A calendar date, `YYYY-MM-DD`.
    pub(crate) fn date(&self, key: &str) -> Checked<NaiveDate> {
        let given = self.text(key)?;
        NaiveDate::parse_from_str(given, "%Y-%m-%d")
            .ok()
            .filter(|_| given.len() == 10)
            .ok_or_else(|| Invalid::new(self.name(key), "must be a date (YYYY-MM-DD)"))
    }

    /// A date of birth: a date, not in the future.
    pub(crate) fn birth_date(&self, key: &str) -> Checked<NaiveDate> {
        let date = self.date(key)?;
        if date > chrono::Utc::now().date_naive() {
            return Err(Invalid::new(self.name(key), "must not be in the future"));
        }
        Ok(date)
    }

    /// A US ZIP code: `12345` or `12345-6789`.
    pub(crate) fn zip(&self, key: &str) -> Checked<&'a str> {
        let given = self.text(key)?;
        let b = given.as_bytes();
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        let ok = match b.len() {
            5 => digits(b),
            10 => digits(&b[..5]) && b[5] == b'-' && digits(&b[6..]),
            _ => false,
        };
        if ok {
            Ok(given)
        } else {
            Err(Invalid::new(self.name(key), "must be a ZIP code (12345 or 12345-6789)"))
        }
    }

    /// A whole number within `range`, sent as a JSON number or (when `strings`) a numeric string.
    pub(crate) fn count(&self, key: &str, range: RangeInclusive<u64>, strings: bool) -> Checked<u64> {
        let n = match self.get(key) {
            None => return Err(self.missing(key)),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) if strings => s.trim().parse().ok(),
            Some(_) => None,
        };
        n.filter(|n| range.contains(n)).ok_or_else(|| {
            Invalid::new(
                self.name(key),
                &format!("must be a whole number from {} to {}", range.start(), range.end()),
            )
        })
    }

    /// A quantity above zero: a JSON number, or (for LifeFile) a string holding one.
    pub(crate) fn quantity(&self, key: &str, as_string: bool) -> Checked<f64> {
        let n = match (self.get(key), as_string) {
            (None, _) => return Err(self.missing(key)),
            (Some(Value::String(s)), true) => s.trim().parse::<f64>().ok(),
            (Some(Value::Number(n)), false) => n.as_f64(),
            (Some(_), true) => return Err(Invalid::new(self.name(key), "must be a string")),
            (Some(_), false) => return Err(Invalid::new(self.name(key), "must be a number")),
        };
        n.filter(|n| n.is_finite() && *n > 0.0)
            .ok_or_else(|| Invalid::new(self.name(key), "must be a quantity above zero"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_name_the_field_by_its_path() {
        let v = json!({ "order": { "rxs": [{ "quantity": 3 }], "patient": { "state": "ZZ" } } });
        let order = Scope::root(&v).object("order").unwrap();
        let rx = &order.list("rxs").unwrap()[0];
        let e = rx.quantity("quantity", true).unwrap_err();
        assert_eq!(e.field, "order.rxs[0].quantity");
        assert_eq!(e.message, "order.rxs[0].quantity must be a string");
        assert_eq!(
            order.object("patient").unwrap().state("state").unwrap_err().field,
            "order.patient.state"
        );
        assert_eq!(order.text("memo").unwrap_err().message, "order.memo is required");
    }

    #[test]
    fn values_are_checked() {
        let v = json!({ "zip": "12345-678", "dob": "1990-02-30", "refills": "2", "state": "ny", "id": 42 });
        let s = Scope::root(&v);
        assert!(s.zip("zip").is_err());
        assert!(s.date("dob").is_err());
        assert_eq!(s.count("refills", 0..=99, true).unwrap(), 2);
        assert!(s.count("refills", 0..=99, false).is_err());
        assert_eq!(s.state("state").unwrap(), "NY");
        assert_eq!(s.id("id").unwrap(), "42");
    }
}
