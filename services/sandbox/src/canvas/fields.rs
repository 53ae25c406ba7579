//! Small readers over FHIR JSON: references, codings, dates. Resources are kept as
//! `serde_json::Value` because the sandbox must echo back whatever fields a client sends.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

use super::outcome::{FhirError, FhirResult};

/// The string at a JSON pointer, if it is a non-empty string.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The id in a `{"reference": "<Type>/<id>"}` object, if it points at `ty`.
pub(crate) fn ref_id<'a>(reference: &'a Value, ty: &str) -> Option<&'a str> {
    let (t, id) = reference.get("reference")?.as_str()?.split_once('/')?;
    (t == ty && !id.is_empty() && !id.contains('/')).then_some(id)
}

/// The resource type a reference object points at.
pub(crate) fn ref_type(reference: &Value) -> Option<&str> {
    reference.get("reference")?.as_str()?.split_once('/').map(|(t, _)| t)
}

/// Whether a reference object matches a search value given as `<Type>/<id>` or a bare `<id>`.
pub(crate) fn ref_matches(reference: Option<&Value>, ty: &str, wanted: &str) -> bool {
    let wanted = wanted.strip_prefix(&format!("{ty}/")).unwrap_or(wanted);
    reference.and_then(|r| ref_id(r, ty)) == Some(wanted)
}

pub(crate) fn reference(ty: &str, id: &str) -> Value {
    serde_json::json!({ "reference": format!("{ty}/{id}"), "type": ty })
}

/// Every `coding` in a CodeableConcept (or a list of them).
pub(crate) fn codings(concept: Option<&Value>) -> Vec<&Value> {
    match concept {
        Some(Value::Array(items)) => items.iter().flat_map(|c| codings(Some(c))).collect(),
        Some(c) => c
            .get("coding")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// A token search value (`code` or `system|code`) against the codings of a concept.
pub(crate) fn token_matches(concept: Option<&Value>, wanted: &str) -> bool {
    let (system, code) = match wanted.split_once('|') {
        Some((s, c)) => (Some(s), c),
        None => (None, wanted),
    };
    codings(concept).iter().any(|c| {
        let code_ok = code.is_empty() || c.get("code").and_then(Value::as_str) == Some(code);
        let system_ok = system.is_none_or(|s| s.is_empty() || c.get("system").and_then(Value::as_str) == Some(s));
        code_ok && system_ok
    })
}

/// The extension with `url` in a resource's `extension` list.
pub(crate) fn extension<'a>(resource: &'a Value, url: &str) -> Option<&'a Value> {
    resource
        .get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(url))
}

/// FHIR timestamps as Canvas writes them: UTC with an explicit offset.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A FHIR date or dateTime as the closed interval of instants it covers: `2026` is the whole year,
/// `2026-03-01` the whole (UTC) day, a dateTime one instant. Search comparisons work on these.
pub(crate) fn date_range(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let day_start = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    let bytes = s.as_bytes();
    let (lo, hi_exclusive) = match s.len() {
        4 if bytes.iter().all(u8::is_ascii_digit) => {
            let year: i32 = s.parse().ok()?;
            (
                NaiveDate::from_ymd_opt(year, 1, 1)?,
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?,
            )
        }
        7 => {
            let d = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()?;
            let next = if d.month() == 12 {
                NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)?
            };
            (d, next)
        }
        10 => {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            (d, d.succ_opt()?)
        }
        _ => {
            let t = instant(s)?;
            return Some((t, t));
        }
    };
    Some((
        day_start(lo),
        day_start(hi_exclusive) - chrono::Duration::milliseconds(1),
    ))
}

/// A FHIR dateTime with an offset, or without one (taken as UTC).
pub(crate) fn instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Validates a FHIR `date` (YYYY, YYYY-MM or YYYY-MM-DD).
pub(crate) fn is_date(s: &str) -> bool {
    matches!(s.len(), 4 | 7 | 10) && date_range(s).is_some()
}

/// A date search value with its prefix (`ge2026-01-01`), tested against a stored date or dateTime.
pub(crate) fn date_matches(stored: Option<&str>, wanted: &str, param: &str) -> FhirResult<bool> {
    let (prefix, value) = match wanted.get(..2) {
        Some(p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le")) => (p, &wanted[2..]),
        _ => ("eq", wanted),
    };
    let (q_lo, q_hi) = date_range(value)
        .ok_or_else(|| FhirError::invalid(format!("Invalid date '{wanted}' for parameter '{param}'")))?;
    let Some((lo, hi)) = stored.and_then(date_range) else {
        return Ok(false);
    };
    // FHIR's definitions: eq = the stored range lies inside the searched one; gt/lt = some of it
    // lies strictly after/before; ge/le = some of it lies at or after/before.
    Ok(match prefix {
        "eq" => lo >= q_lo && hi <= q_hi,
        "ne" => !(lo >= q_lo && hi <= q_hi),
        "gt" => hi > q_hi,
        "lt" => lo < q_lo,
        "ge" => hi >= q_lo,
        _ => lo <= q_hi,
    })
}

/// Strict standard base64 (with padding), as a PDF upload must be.
pub(crate) fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && padding <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Case-insensitive substring test.
pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_prefixes_follow_fhir_ranges() {
        let at = Some("2026-03-10T15:00:00-05:00");
        assert!(date_matches(at, "2026-03-10", "date").unwrap());
        assert!(date_matches(at, "ge2026-03-10", "date").unwrap());
        assert!(date_matches(at, "le2026-03-10", "date").unwrap());
        assert!(!date_matches(at, "gt2026-03-10", "date").unwrap());
        assert!(date_matches(at, "lt2026-03-11", "date").unwrap());
        assert!(date_matches(Some("1980-05-02"), "eq1980-05-02", "birthdate").unwrap());
        assert!(date_matches(Some("1980-05-02"), "1980", "birthdate").unwrap());
        assert!(date_matches(at, "ge2026-13-01", "date").is_err());
    }

    #[test]
    fn base64_is_strict() {
        assert!(is_base64("JVBERi0xLjQK"));
        assert!(is_base64("YQ=="));
        assert!(!is_base64("YQ="));
        assert!(!is_base64("not base64!"));
        assert!(!is_base64(""));
    }
}
