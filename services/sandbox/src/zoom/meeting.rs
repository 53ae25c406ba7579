//! A meeting as Zoom keeps it, and its two renderings: the full object that create and get answer
//! with, and the shorter entry of a list.

use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use rand::{distributions::Alphanumeric, Rng, RngCore};
use serde_json::{json, Map, Value};

/// Zoom's GMT form; the local form is the same without the `Z`.
const GMT_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";
const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
/// The web domain of the data center the sandbox's account lives in.
const WEB_BASE: &str = "https://us06web.zoom.us";
/// A `start_url` works for two hours; a fresh one comes with every get.
const ZAK_LIFETIME: Duration = Duration::hours(2);

pub(crate) const INSTANT: u8 = 1;
pub(crate) const SCHEDULED: u8 = 2;
pub(crate) const RECURRING_NO_FIXED_TIME: u8 = 3;
pub(crate) const RECURRING_FIXED_TIME: u8 = 8;

/// When a meeting starts, as the caller gave it. Zoom turns a local time into GMT with the time
/// zone database; the sandbox has none, so a local time is kept (and answered) in its local form,
/// next to the meeting's `timezone`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartTime {
    Gmt(DateTime<Utc>),
    Local(NaiveDateTime),
}

impl StartTime {
    /// `yyyy-MM-ddTHH:mm:ssZ` or `yyyy-MM-ddTHH:mm:ss`, nothing else (no fraction, no offset).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        if let Some(local) = s.strip_suffix('Z') {
            return parse_exact(local).map(|t| Self::Gmt(t.and_utc()));
        }
        parse_exact(s).map(Self::Local)
    }

    pub(crate) fn render(&self) -> String {
        match self {
            Self::Gmt(t) => t.format(GMT_FORMAT).to_string(),
            Self::Local(t) => t.format(LOCAL_FORMAT).to_string(),
        }
    }

    /// For ordering and for "upcoming": a local time is read as if it were GMT, off by at most the
    /// zone's offset, which the sandbox cannot know.
    pub(crate) fn approx_utc(&self) -> NaiveDateTime {
        match self {
            Self::Gmt(t) => t.naive_utc(),
            Self::Local(t) => *t,
        }
    }
}

/// chrono accepts a single-digit month or hour; Zoom's format is fixed-width.
fn parse_exact(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 19 {
        return None;
    }
    NaiveDateTime::parse_from_str(s, LOCAL_FORMAT).ok()
}

#[derive(Clone, Debug)]
pub(crate) struct Meeting {
    pub(crate) id: i64,
    pub(crate) uuid: String,
    pub(crate) host_id: String,
    pub(crate) host_email: String,
    pub(crate) topic: String,
    pub(crate) kind: u8,
    pub(crate) start_time: Option<StartTime>,
    pub(crate) duration: u32,
    pub(crate) timezone: String,
    pub(crate) agenda: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) password: String,
    pub(crate) h323_password: String,
    pub(crate) pstn_password: String,
    pub(crate) encrypted_password: String,
    pub(crate) settings: Map<String, Value>,
}

impl Meeting {
    /// Sets the passcode and the forms derived from it: the numeric one H.323 and phone callers
    /// type, and the encrypted one in `join_url`.
    pub(crate) fn set_password(&mut self, password: String) {
        let numeric = if !password.is_empty() && password.bytes().all(|b| b.is_ascii_digit()) {
            password.clone()
        } else {
            random_digits(password.len().clamp(6, 10))
        };
        self.h323_password = numeric.clone();
        self.pstn_password = numeric;
        self.encrypted_password = format!("{}.1", random_alphanumeric(32));
        self.password = password;
    }

    /// Type 3 has no start time to show; the others do (an instant meeting's is when it was made).
    fn shown_start(&self) -> Option<String> {
        (self.kind != RECURRING_NO_FIXED_TIME)
            .then_some(self.start_time)
            .flatten()
            .map(|t| t.render())
    }

    pub(crate) fn join_url(&self) -> String {
        format!("{WEB_BASE}/j/{}?pwd={}", self.id, self.encrypted_password)
    }

    /// The create and get answer. `start_url` carries a fresh host key each time.
    pub(crate) fn json(&self, account_id: &str, now: DateTime<Utc>) -> Value {
        let mut body = json!({
            "uuid": self.uuid,
            "id": self.id,
            "host_id": self.host_id,
            "host_email": self.host_email,
            "topic": self.topic,
            "type": self.kind,
            "status": "waiting",
            "duration": self.duration,
            "timezone": self.timezone,
            "agenda": self.agenda,
            "created_at": self.created_at.format(GMT_FORMAT).to_string(),
            "start_url": format!("{WEB_BASE}/s/{}?zak={}", self.id, zak(&self.host_id, account_id, self.id, now)),
            "join_url": self.join_url(),
            "password": self.password,
            "h323_password": self.h323_password,
            "pstn_password": self.pstn_password,
            "encrypted_password": self.encrypted_password,
            "settings": self.settings,
            "pre_schedule": false,
        });
        if let Some(start) = self.shown_start() {
            body["start_time"] = start.into();
        }
        body
    }

    /// One entry of `GET /users/{userId}/meetings`.
    pub(crate) fn summary(&self) -> Value {
        let mut body = json!({
            "uuid": self.uuid,
            "id": self.id,
            "host_id": self.host_id,
            "topic": self.topic,
            "type": self.kind,
            "duration": self.duration,
            "timezone": self.timezone,
            "agenda": self.agenda,
            "created_at": self.created_at.format(GMT_FORMAT).to_string(),
            "join_url": self.join_url(),
        });
        if let Some(start) = self.shown_start() {
            body["start_time"] = start.into();
        }
        body
    }
}

/// Zoom's settings defaults for a new meeting; a create's `settings` are merged over them.
pub(crate) fn default_settings() -> Map<String, Value> {
    let defaults = json!({
        "host_video": false,
        "participant_video": false,
        "join_before_host": false,
        "mute_upon_entry": false,
        "approval_type": 2,
        "audio": "both",
        "auto_recording": "none",
        "waiting_room": false,
    });
    match defaults {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// An 11-digit meeting number not in use.
pub(crate) fn new_meeting_id(taken: impl Fn(i64) -> bool) -> i64 {
    let mut rng = rand::thread_rng();
    loop {
        let id = rng.gen_range(81_000_000_000..=89_999_999_999_i64);
        if !taken(id) {
            return id;
        }
    }
}

/// 16 random bytes in standard base64: 24 characters ending `==`, `/` and `+` included, as Zoom's
/// meeting UUIDs are (callers must encode them in paths).
pub(crate) fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The passcode Zoom makes up when a create gives none.
pub(crate) fn generated_password() -> String {
    random_alphanumeric(8)
}

fn random_alphanumeric(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn random_digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// The host's start key: a JWT-shaped token naming the host and meeting, valid two hours.
fn zak(host_id: &str, account_id: &str, meeting_id: i64, now: DateTime<Utc>) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({ "typ": "JWT", "sv": "000001", "zm_skm": "zm_o2m", "alg": "HS256" });
    let payload = json!({
        "aud": "clientsm",
        "uid": host_id,
        "iss": "web",
        "sty": 1,
        "wcd": "us06",
        "clt": 0,
        "mnum": meeting_id.to_string(),
        "exp": (now + ZAK_LIFETIME).timestamp(),
        "iat": now.timestamp(),
        "aid": account_id,
    });
    let mut signature = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut signature);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(&signature)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_take_zooms_two_forms_only() {
        let gmt = StartTime::parse("2025-03-01T15:30:00Z").unwrap();
        assert!(matches!(gmt, StartTime::Gmt(_)));
        assert_eq!(gmt.render(), "2025-03-01T15:30:00Z");
        let local = StartTime::parse("2025-03-01T10:30:00").unwrap();
        assert!(matches!(local, StartTime::Local(_)));
        assert_eq!(local.render(), "2025-03-01T10:30:00");
        for bad in [
            "2025-03-01T15:30:00.000Z",
            "2025-03-01T15:30:00+02:00",
            "2025-3-01T15:30:00Z",
            "2025-03-01 15:30:00",
            "2025-02-30T10:00:00Z",
            "",
        ] {
            assert_eq!(StartTime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_and_uuids_have_zooms_shapes() {
        let id = new_meeting_id(|_| false);
        assert_eq!(id.to_string().len(), 11);
        let uuid = new_uuid();
        assert_eq!(uuid.len(), 24);
        assert!(uuid.ends_with("=="));
    }
}
