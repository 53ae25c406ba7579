//! The create and update body, checked field by field. Zoom's backend binds JSON with Jackson, so
//! a number sent as a string of digits is accepted, `null` counts as absent, and keys it does not
//! know are ignored; anything but a JSON object is refused outright.

use serde_json::{Map, Value};

use super::{
    errors::{FieldError, ZoomError, ZoomResult},
    meeting::{StartTime, INSTANT, RECURRING_FIXED_TIME, RECURRING_NO_FIXED_TIME, SCHEDULED},
};

const MAX_TOPIC: usize = 200;
const MAX_AGENDA: usize = 2000;
const MAX_PASSWORD: usize = 10;

/// What a body sets; `None` leaves the meeting's value (or, on create, Zoom's default).
#[derive(Clone, Debug, Default)]
pub(crate) struct Changes {
    pub(crate) topic: Option<String>,
    pub(crate) kind: Option<u8>,
    pub(crate) start_time: Option<StartTime>,
    pub(crate) duration: Option<u32>,
    pub(crate) timezone: Option<String>,
    /// An empty passcode counts as none given.
    pub(crate) password: Option<String>,
    pub(crate) agenda: Option<String>,
    /// Given settings, checked; merged over the meeting's.
    pub(crate) settings: Map<String, Value>,
}

/// The changes a body asks for, and every problem found in it (the caller may add its own before
/// deciding); an error only when the body is not a JSON object at all.
pub(crate) fn parse(body: &[u8]) -> ZoomResult<(Changes, Vec<FieldError>)> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(ZoomError::not_an_object());
    };
    let mut errors = Vec::new();
    let mut changes = Changes::default();
    let get = |key: &str| obj.get(key).filter(|v| !v.is_null());

    if let Some(v) = get("topic") {
        match v.as_str() {
            Some(t) if t.trim().is_empty() => errors.push(FieldError::new("topic", "Topic cannot be empty.")),
            Some(t) if t.chars().count() > MAX_TOPIC => errors.push(FieldError::new(
                "topic",
                format!("Topic can be at most {MAX_TOPIC} characters."),
            )),
            Some(t) => changes.topic = Some(t.to_owned()),
            None => errors.push(FieldError::new("topic", "Invalid field.")),
        }
    }
    if let Some(v) = get("type") {
        match integer(v).and_then(|n| u8::try_from(n).ok()) {
            Some(k) if [INSTANT, SCHEDULED, RECURRING_NO_FIXED_TIME, RECURRING_FIXED_TIME].contains(&k) => {
                changes.kind = Some(k);
            }
            _ => errors.push(FieldError::new("type", "Invalid field: type must be 1, 2, 3 or 8.")),
        }
    }
    if let Some(v) = get("start_time") {
        match v.as_str().and_then(StartTime::parse) {
            Some(t) => changes.start_time = Some(t),
            None => errors.push(FieldError::new(
                "start_time",
                "Invalid field: use yyyy-MM-ddTHH:mm:ssZ (GMT) or yyyy-MM-ddTHH:mm:ss with a timezone.",
            )),
        }
    }
    if let Some(v) = get("duration") {
        match integer(v).and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0) {
            Some(d) => changes.duration = Some(d),
            None => errors.push(FieldError::new(
                "duration",
                "Invalid field: duration must be a positive number of minutes.",
            )),
        }
    }
    if let Some(v) = get("timezone") {
        match v.as_str().filter(|tz| plausible_zone(tz)) {
            Some(tz) => changes.timezone = Some(tz.to_owned()),
            None => errors.push(FieldError::new("timezone", "Invalid field: not a time zone ID.")),
        }
    }
    if matches!(changes.start_time, Some(StartTime::Local(_))) && changes.timezone.is_none() {
        errors.push(FieldError::new(
            "timezone",
            "timezone is required when start_time is a local time (yyyy-MM-ddTHH:mm:ss).",
        ));
    }
    if let Some(v) = get("password") {
        match v.as_str() {
            Some("") => {}
            Some(p) if p.chars().count() <= MAX_PASSWORD && p.chars().all(password_char) => {
                changes.password = Some(p.to_owned());
            }
            _ => errors.push(FieldError::new(
                "password",
                "Passcode may only contain up to 10 characters: letters, numbers and @ - _ *",
            )),
        }
    }
    if let Some(v) = get("agenda") {
        match v.as_str() {
            Some(a) if a.chars().count() <= MAX_AGENDA => changes.agenda = Some(a.to_owned()),
            Some(_) => errors.push(FieldError::new(
                "agenda",
                format!("Agenda can be at most {MAX_AGENDA} characters."),
            )),
            None => errors.push(FieldError::new("agenda", "Invalid field.")),
        }
    }
    if let Some(v) = get("settings") {
        match v.as_object() {
            Some(given) => changes.settings = settings(given, &mut errors),
            None => errors.push(FieldError::new("settings", "Invalid field.")),
        }
    }
    Ok((changes, errors))
}

/// A JSON integer, or a string of digits as Jackson coerces it.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

/// Zoom checks IANA ids against its own list; without a time zone database the sandbox refuses
/// only what cannot be an id at all (blank, spaces, punctuation).
fn plausible_zone(tz: &str) -> bool {
    !tz.is_empty()
        && tz.len() <= 64
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
}

fn password_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_' | '*')
}

/// The given settings with the known ones checked; unknown ones pass through to the echo.
fn settings(given: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Map<String, Value> {
    const BOOLEANS: &[&str] = &[
        "host_video",
        "participant_video",
        "join_before_host",
        "mute_upon_entry",
        "waiting_room",
    ];
    let mut out = Map::new();
    for (key, value) in given.iter().filter(|(_, v)| !v.is_null()) {
        let ok = match key.as_str() {
            k if BOOLEANS.contains(&k) => value.is_boolean(),
            "approval_type" => integer(value).is_some_and(|n| (0..=2).contains(&n)),
            "audio" => value
                .as_str()
                .is_some_and(|a| ["both", "telephony", "voip", "thirdParty"].contains(&a)),
            "auto_recording" => value.as_str().is_some_and(|a| ["local", "cloud", "none"].contains(&a)),
            _ => true,
        };
        if !ok {
            errors.push(FieldError::new(format!("settings.{key}"), "Invalid field."));
            continue;
        }
        let value = match key.as_str() {
            "approval_type" => integer(value).map_or(Value::Null, Value::from),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: &Value) -> Vec<String> {
        let (_, errors) = parse(body.to_string().as_bytes()).unwrap();
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_good_body_parses_with_coercions() {
        let body = json!({
            "topic": "Follow-up", "type": "2", "start_time": "2025-03-01T15:00:00Z", "duration": 30,
            "password": "a1@-_*", "agenda": null, "unknown": 1,
            "settings": { "join_before_host": true, "approval_type": "0", "jbh_time": 5 },
        });
        let (c, errors) = parse(body.to_string().as_bytes()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.kind, Some(2));
        assert_eq!(c.duration, Some(30));
        assert_eq!(c.agenda, None);
        assert_eq!(c.settings["approval_type"], 0);
        assert_eq!(c.settings["jbh_time"], 5);
    }

    #[test]
    fn every_bad_field_is_named() {
        let body = json!({
            "topic": "x".repeat(201), "type": 4, "start_time": "2025-03-01T10:00:00", "duration": 0,
            "password": "toolongpassword", "agenda": "a".repeat(2001),
            "settings": { "audio": "loud", "waiting_room": "yes" },
        });
        let mut got = fields(&body);
        got.sort();
        assert_eq!(
            got,
            [
                "agenda",
                "duration",
                "password",
                "settings.audio",
                "settings.waiting_room",
                "timezone",
                "topic",
                "type"
            ]
        );
        assert_eq!(fields(&json!({ "password": "no spaces" })), ["password"]);
        assert_eq!(fields(&json!({ "timezone": "Not A Zone" })), ["timezone"]);
        assert_eq!(fields(&json!({ "topic": "  " })), ["topic"]);
    }

    #[test]
    fn only_a_json_object_is_a_body() {
        for body in ["", "not json", "[]", "\"topic\"", "{\"topic\":"] {
            assert_eq!(
                parse(body.as_bytes()).unwrap_err(),
                ZoomError::not_an_object(),
                "{body}"
            );
        }
    }
}
