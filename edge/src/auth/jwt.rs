//! Admin and patient session tokens: HS256 only, each kind with its own key and audience so one
//! kind never validates as the other (RFC 8725 §3.12).

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "era-edge";
pub const ADMIN_AUDIENCE: &str = "era-admin";
pub const PATIENT_AUDIENCE: &str = "era-patient";
pub const INTAKE_AUDIENCE: &str = "era-intake";
pub const ADMIN_TTL_SECS: i64 = 24 * 60 * 60;
pub const PATIENT_TTL_SECS: i64 = 4 * 60 * 60;
/// Long enough to fill in the card after submitting the form, short enough to be worthless later.
pub const INTAKE_TTL_SECS: i64 = 2 * 60 * 60;
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
}

/// Issues and verifies one kind of token.
#[derive(Clone)]
pub struct TokenKind {
    audience: &'static str,
    ttl_secs: i64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens already verified, until their `exp`: every admin request presents its token again.
    verified: std::sync::Arc<era_kit::cache::ExpiringCache<String, Claims>>,
}

impl std::fmt::Debug for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKind")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// A token just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub token: String,
    pub claims: Claims,
}

impl Issued {
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.claims.exp, 0).unwrap_or_default()
    }
}

impl TokenKind {
    fn new(secret: &SecretString, audience: &'static str, ttl_secs: i64) -> Self {
        let key = secret.expose_secret().as_bytes();
        // The algorithm is pinned: a header naming `none`, HS512 or RS256 fails before any claim is read.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            audience,
            ttl_secs,
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            verified: Default::default(),
        }
    }

    pub fn admin(secret: &SecretString) -> Self {
        Self::new(secret, ADMIN_AUDIENCE, ADMIN_TTL_SECS)
    }

    pub fn patient(secret: &SecretString) -> Self {
        Self::new(secret, PATIENT_AUDIENCE, PATIENT_TTL_SECS)
    }

    /// The token an intake submission answers with: it lets that browser save a card for the
    /// patient the submission created, and nothing else. Its key is derived from the patient key,
    /// so it is a separate key without a separate secret to manage.
    pub fn intake(patient_secret: &SecretString) -> Self {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(patient_secret.expose_secret().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(b"era-intake-token-key");
        let derived = hex::encode(mac.finalize().into_bytes());
        Self::new(&SecretString::from(derived), INTAKE_AUDIENCE, INTAKE_TTL_SECS)
    }

    pub fn issue(&self, subject: &str) -> Issued {
        self.issue_as(subject, &uuid::Uuid::new_v4().to_string())
    }

    /// A token whose `jti` is given: what it keys (an intake token's one SetupIntent) is the same
    /// for every token issued with it.
    pub fn issue_as(&self, subject: &str, jti: &str) -> Issued {
        let iat = Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: self.audience.into(),
            sub: subject.into(),
            iat,
            exp: iat + self.ttl_secs,
            nbf: None,
            jti: jti.to_owned(),
        };
        let token = self.sign(&claims);
        Issued { token, claims }
    }

    /// Signs arbitrary claims with this kind's key (tests forge edge cases with it).
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The claims of a valid token of this kind. Also refuses tokens that claim to live longer than
    /// this kind may (a leaked key aside, we never issue such a token).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let now = Utc::now().timestamp();
        if let Some(claims) = self.verified.get(token, now) {
            return Some(claims);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        let lifetime_ok = claims.exp - claims.iat <= self.ttl_secs && claims.iat <= now + 60;
        if !lifetime_ok || claims.sub.is_empty() || claims.jti.is_empty() {
            return None;
        }
        self.verified.insert(token.to_owned(), claims.clone(), claims.exp);
        Some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> SecretString {
        SecretString::from(c.to_string().repeat(40))
    }

    #[test]
    fn admin_tokens_round_trip_and_other_kinds_do_not_validate() {
        let admin = TokenKind::admin(&key('a'));
        let issued = admin.issue("ops@clinic.example");
        assert_eq!(issued.claims.exp - issued.claims.iat, 86_400);
        assert_eq!(admin.verify(&issued.token).unwrap().sub, "ops@clinic.example");
        // Same key, other audience: still refused.
        let patient_same_key = TokenKind::patient(&key('a'));
        assert!(patient_same_key.verify(&issued.token).is_none());
        assert!(TokenKind::admin(&key('b')).verify(&issued.token).is_none());
    }

    #[test]
    fn overlong_lifetimes_are_refused() {
        let admin = TokenKind::admin(&key('a'));
        let mut claims = admin.issue("x").claims;
        claims.exp = claims.iat + ADMIN_TTL_SECS + 1;
        assert!(admin.verify(&admin.sign(&claims)).is_none());
    }
}
