//! One-time codes and magic links: created here, delivered through the outbox (so a code is sealed
//! at rest and sent exactly like any other message), checked here. Only keyed hashes of codes and
//! links are stored. A code is six digits, lives 10 minutes, works once and survives at most 5 wrong
//! tries; a link lives 15 minutes and works once. At most 5 codes or links are sent per email per
//! 15 minutes.

use chrono::{DateTime, Duration, Utc};
use era_kit::auth::constant_time_eq;
use era_proto::notifications::v1 as pb;
use rand::Rng as _;
use uuid::Uuid;

use crate::{
    app::App,
    error::{Error, Result},
    outbox::{self, Payload},
    store::NewLoginCode,
    templates::{self, Channel, Kind},
};

pub(crate) const CODE_TTL: Duration = Duration::minutes(10);
pub(crate) const LINK_TTL: Duration = Duration::minutes(15);
pub(crate) const MAX_FAILED: i32 = 5;
/// Wrong codes an email may have in an hour, over all its codes.
pub(crate) const MAX_FAILED_PER_HOUR: i64 = 10;
pub(crate) const SENDS_PER_WINDOW: i64 = 5;
pub(crate) const WINDOW: Duration = Duration::minutes(15);

/// How long a sign-in message is worth delivering: its code's or link's life.
pub(crate) fn lifetime(kind: Kind) -> Option<Duration> {
    match kind {
        Kind::OneTimeCode => Some(CODE_TTL),
        Kind::MagicLink => Some(LINK_TTL),
        _ => None,
    }
}

/// What a code or link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    AdminOtp,
    PatientOtp,
    MagicLink,
}

impl Purpose {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::AdminOtp => "admin_otp",
            Self::PatientOtp => "patient_otp",
            Self::MagicLink => "magic_link",
        }
    }
}

fn email_of(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    if !templates::is_email(&email) {
        return Err(Error::field("email", "is not an email address"));
    }
    Ok(email)
}

fn invalid(reason: &'static str) -> Error {
    Error::Unauthenticated(reason)
}

/// The keyed hash of a code, bound to its row so a hash cannot be moved to another row.
fn code_hash(app: &App, id: Uuid, code: &str) -> String {
    app.keys.blind_index("login-code", &format!("{id}:{code}"))
}

/// The keyed hash of a link's token. Hex first: the blind index folds case, and a token whose
/// letters changed case is another token.
fn link_hash(app: &App, token: &str) -> String {
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    app.keys.blind_index("magic-link", &hex)
}

/// Refuses a send beyond the window's allowance for this email (and purpose).
async fn check_rate(app: &App, purpose: Purpose, email_hash: &str) -> Result<()> {
    let recent = app
        .store
        .recent_login_codes(purpose.code(), email_hash, Utc::now() - WINDOW)
        .await?;
    if recent >= SENDS_PER_WINDOW {
        return Err(Error::Exhausted(
            "RATE_LIMITED",
            format!("at most {SENDS_PER_WINDOW} codes or links per email every 15 minutes; try again later"),
        ));
    }
    Ok(())
}

/// Creates a code (or, without a recipient, a row that counts toward the rate but can never be
/// used) and sends it.
async fn issue_code(
    app: &App,
    purpose: Purpose,
    email: &str,
    admin_email: Option<&str>,
    patient: Option<&str>,
) -> Result<DateTime<Utc>> {
    let email_hash = app.keys.blind_index("login-email", email);
    check_rate(app, purpose, &email_hash).await?;
    let id = Uuid::new_v4();
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32));
    let expires_at = Utc::now() + CODE_TTL;
    let deliver = admin_email.is_some() || patient.is_some();
    let secret_hash = if deliver {
        code_hash(app, id, &code)
    } else {
        // Nobody to send to: the row only keeps the answer and the rate the same as for a real one.
        format!("unusable:{}", Uuid::new_v4())
    };
    app.store
        .insert_login_code(NewLoginCode {
            id,
            purpose: purpose.code(),
            email_hash: &email_hash,
            admin_email,
            canvas_patient_id: patient,
            secret_hash: &secret_hash,
            expires_at,
        })
        .await?;
    if deliver {
        send(app, Kind::OneTimeCode, email, patient, [("code", code)], id).await?;
    }
    Ok(expires_at)
}

/// Puts a code or link in the outbox, to the email given (not the chart's: it is the login's).
async fn send<const N: usize>(
    app: &App,
    kind: Kind,
    email: &str,
    patient: Option<&str>,
    variables: [(&str, String); N],
    id: Uuid,
) -> Result<()> {
    let request = outbox::Request {
        kind: Some(kind),
        patient: patient.unwrap_or_default().to_owned(),
        payload: Payload {
            variables: variables.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            email: email.to_owned(),
            ..Default::default()
        },
        reference: id.to_string(),
        dedupe_key: format!("login:{id}"),
        channels: vec![Channel::Email],
        send_at: None,
        by: era_proto::common::v1::Actor {
            subject: "era-notifications/logins".into(),
            role: "service".into(),
        },
        on_behalf_of: None,
    };
    outbox::record(app, request).await.map(|_| ())
}

/// Checks a code: the newest live code for the email, single use, at most MAX_FAILED wrong tries.
async fn verify_code(app: &App, purpose: Purpose, email: &str, code: &str) -> Result<crate::store::LoginCodeRow> {
    let email = email_of(email)?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::field("code", "must be six digits"));
    }
    let email_hash = app.keys.blind_index("login-email", &email);
    app.store
        .use_login_code(purpose.code(), &email_hash, MAX_FAILED, MAX_FAILED_PER_HOUR, |row| {
            constant_time_eq(code_hash(app, row.id, code).as_bytes(), row.secret_hash.as_bytes())
        })
        .await?
        .ok_or_else(|| invalid("INVALID_CODE"))
}

pub(crate) async fn send_admin_otp(app: &App, req: &pb::SendAdminOtpRequest) -> Result<pb::SendAdminOtpResponse> {
    let email = email_of(&req.email)?;
    let expires = issue_code(app, Purpose::AdminOtp, &email, Some(&email), None).await?;
    Ok(pb::SendAdminOtpResponse {
        expires_at: Some(era_kit::time::timestamp(expires)),
    })
}

pub(crate) async fn verify_admin_otp(app: &App, req: &pb::VerifyAdminOtpRequest) -> Result<pb::VerifyAdminOtpResponse> {
    let row = verify_code(app, Purpose::AdminOtp, &req.email, &req.code).await?;
    Ok(pb::VerifyAdminOtpResponse {
        admin: Some(pb::AdminIdentity {
            email: row.admin_email.unwrap_or_default(),
        }),
    })
}

pub(crate) async fn send_patient_otp(app: &App, req: &pb::SendPatientOtpRequest) -> Result<pb::SendPatientOtpResponse> {
    let email = email_of(&req.email)?;
    // A chart this email has already signed in to keeps it: a code entered proved the address is
    // that person's, and a newer chart naming the same email (someone else's intake) never takes
    // over. Otherwise the newest chart, when every chart with the email is one person's. When they
    // are of different people (a family sharing an address) no code is sent: signing into the wrong
    // chart is worse than not signing in.
    let charts = app.patients_by_email(&email).await?;
    let proven = app
        .store
        .proven_charts(&app.keys.blind_index("login-email", &email))
        .await?;
    let people: std::collections::BTreeSet<&str> = charts.iter().map(|(_, person)| person.as_str()).collect();
    let patient = if let Some((id, _)) = charts.iter().find(|(id, _)| proven.contains(id)) {
        Some(id.clone())
    } else if people.len() > 1 {
        tracing::warn!(
            charts = charts.len(),
            "several people's charts share an email; no sign-in code sent"
        );
        None
    } else {
        charts.first().map(|(id, _)| id.clone())
    };
    let expires = issue_code(app, Purpose::PatientOtp, &email, None, patient.as_deref()).await?;
    Ok(pb::SendPatientOtpResponse {
        expires_at: Some(era_kit::time::timestamp(expires)),
    })
}

pub(crate) async fn verify_patient_otp(
    app: &App,
    req: &pb::VerifyPatientOtpRequest,
) -> Result<pb::VerifyPatientOtpResponse> {
    let row = verify_code(app, Purpose::PatientOtp, &req.email, &req.code).await?;
    let patient = row.canvas_patient_id.ok_or_else(|| invalid("INVALID_CODE"))?;
    let email = email_of(&req.email)?;
    app.store
        .prove_login(&app.keys.blind_index("login-email", &email), &patient)
        .await?;
    Ok(pb::VerifyPatientOtpResponse {
        canvas_patient_id: patient,
    })
}

pub(crate) async fn send_magic_link(app: &App, req: &pb::SendMagicLinkRequest) -> Result<pb::SendMagicLinkResponse> {
    let email = email_of(&req.email)?;
    let email_hash = app.keys.blind_index("login-email", &email);
    check_rate(app, Purpose::MagicLink, &email_hash).await?;
    let id = Uuid::new_v4();
    let token = {
        use base64::Engine as _;
        let bytes: [u8; 32] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let expires_at = Utc::now() + LINK_TTL;
    app.store
        .insert_login_code(NewLoginCode {
            id,
            purpose: Purpose::MagicLink.code(),
            email_hash: &email_hash,
            admin_email: Some(&email),
            canvas_patient_id: None,
            secret_hash: &link_hash(app, &token),
            expires_at,
        })
        .await?;
    let link = format!("{}?token={token}", app.magic_link_url);
    send(app, Kind::MagicLink, &email, None, [("link", link)], id).await?;
    Ok(pb::SendMagicLinkResponse {
        expires_at: Some(era_kit::time::timestamp(expires_at)),
    })
}

/// A link's token as it can be: URL-safe base64, bounded.
fn link_token(raw: &str) -> Option<&str> {
    let token = raw.trim();
    let ok = !token.is_empty()
        && token.len() <= 200
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(token)
}

pub(crate) async fn check_magic_link(app: &App, req: &pb::CheckMagicLinkRequest) -> Result<pb::CheckMagicLinkResponse> {
    let state = match link_token(&req.token) {
        None => pb::MagicLinkState::Unknown,
        Some(token) => match app.store.magic_link_state(&link_hash(app, token)).await? {
            None => pb::MagicLinkState::Unknown,
            Some((true, _)) => pb::MagicLinkState::Used,
            Some((false, true)) => pb::MagicLinkState::Expired,
            Some((false, false)) => pb::MagicLinkState::Usable,
        },
    };
    Ok(pb::CheckMagicLinkResponse { state: state as i32 })
}

pub(crate) async fn consume_magic_link(
    app: &App,
    req: &pb::ConsumeMagicLinkRequest,
) -> Result<pb::ConsumeMagicLinkResponse> {
    let token = link_token(&req.token).ok_or_else(|| invalid("INVALID_LINK"))?;
    let row = app
        .store
        .use_magic_link(&link_hash(app, token))
        .await?
        .ok_or_else(|| invalid("INVALID_LINK"))?;
    Ok(pb::ConsumeMagicLinkResponse {
        admin: Some(pb::AdminIdentity {
            email: row.admin_email.unwrap_or_default(),
        }),
    })
}
