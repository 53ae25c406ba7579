//! The parsers anyone on the internet can reach, under generated input: the Canvas plugin's HMAC,
//! Stripe-style webhook signatures, session tokens and the public intake form. None panics, none
//! answers a server error for bad input, garbage never verifies, and a genuine signature or token
//! does (and stops doing so when one byte changes). Cases per property: `PROPTEST_CASES` (256 by
//! default; CI runs the default).

mod common;

use ::hmac::Mac as _;
use axum::{body::Body, http::Request};
use chrono::Utc;
use era_edge::{
    auth::{hmac, jwt::TokenKind},
    routes::verify_webhook_signature,
    AppState,
};
use era_kit::{testing::TestDb, SecretString};
use proptest::prelude::*;
use tower::ServiceExt as _;

fn sign(secret: &str, message: &[u8]) -> String {
    let mut mac = <::hmac::Hmac<sha2::Sha256> as ::hmac::Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

proptest! {
    #[test]
    fn the_plugin_signature_never_panics_and_garbage_never_verifies(
        timestamp in ".{0,40}",
        signature in ".{0,140}",
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let secret = SecretString::from("plugin-secret-0123456789abcdef0123456789");
        prop_assert!(hmac::verify(&secret, &timestamp, &signature, &body, Utc::now()).is_err());
    }

    #[test]
    fn a_genuine_plugin_signature_verifies_and_any_changed_byte_does_not(
        body in proptest::collection::vec(any::<u8>(), 1..512),
        flip in any::<usize>(),
    ) {
        let key = "plugin-secret-0123456789abcdef0123456789";
        let secret = SecretString::from(key);
        let now = Utc::now();
        let ts = now.timestamp().to_string();
        let mut message = format!("{ts}.").into_bytes();
        message.extend_from_slice(&body);
        let signature = sign(key, &message);
        prop_assert!(hmac::verify(&secret, &ts, &signature, &body, now).is_ok());
        let mut changed = body.clone();
        let i = flip % changed.len();
        changed[i] ^= 0x01;
        prop_assert!(hmac::verify(&secret, &ts, &signature, &changed, now).is_err());
    }

    #[test]
    fn webhook_signature_headers_never_panic(
        header in "(t=-?[0-9]{0,22}|v1=[0-9a-f]{0,70}|[ -~]{0,30})(,(t=-?[0-9]{0,22}|v1=[0-9a-f]{0,70}|[ -~]{0,30})){0,5}",
        body in proptest::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
    ) {
        prop_assert!(verify_webhook_signature(&["whsec_0123456789abcdef0123456789abcdef"], &header, &body, now).is_err());
    }

    #[test]
    fn a_genuine_webhook_verifies_and_a_changed_body_does_not(
        body in proptest::collection::vec(any::<u8>(), 1..256),
        flip in any::<usize>(),
    ) {
        let secret = "whsec_0123456789abcdef0123456789abcdef";
        let t = Utc::now().timestamp();
        let mut message = format!("{t}.").into_bytes();
        message.extend_from_slice(&body);
        let header = format!("t={t},v1={}", sign(secret, &message));
        prop_assert!(verify_webhook_signature(&[secret], &header, &body, t).is_ok());
        let mut changed = body.clone();
        let i = flip % changed.len();
        changed[i] ^= 0x80;
        prop_assert!(verify_webhook_signature(&[secret], &header, &changed, t).is_err());
    }

    #[test]
    fn tokens_never_panic_and_only_genuine_ones_verify(
        garbage in "[A-Za-z0-9_.=-]{0,300}",
        flip in any::<usize>(),
    ) {
        let kind = TokenKind::admin(&SecretString::from(common::ADMIN_JWT_SECRET));
        prop_assert!(kind.verify(&garbage).is_none());
        let issued = kind.issue("ops@clinic.example").token;
        prop_assert!(kind.verify(&issued).is_some());
        // Any one character changed (outside the base64 padding bits of the signature's end).
        let mut bytes = issued.clone().into_bytes();
        let i = flip % (bytes.len() - 2);
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assume!(tampered != issued);
        prop_assert!(kind.verify(&tampered).is_none());
        // A patient token is never an admin's.
        let patient = TokenKind::patient(&SecretString::from(common::PATIENT_JWT_SECRET)).issue("pat-1").token;
        prop_assert!(kind.verify(&patient).is_none());
    }
}

/// A JSON value of any shape, to throw at the intake form.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("submissionId".to_owned()),
                    Just("submission".to_owned()),
                    Just("demographics".to_owned()),
                    Just("answers".to_owned()),
                    Just("birthDate".to_owned()),
                    Just("email".to_owned()),
                    "[a-zA-Z]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn the_intake_form_answers_any_json_without_a_server_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (app, _db) = rt.block_on(async {
        let db = TestDb::new(&era_edge::MIGRATOR).await;
        let mut config = common::config(&db);
        config.rate_limit_multiplier = 100_000;
        let state = AppState::new(config, db.pool.clone()).await.unwrap();
        (era_edge::router(state), db)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    // A valid form with one field replaced by anything, and anything at all.
    let field = prop_oneof![
        Just("/submissionId"),
        Just("/submission/medication"),
        Just("/submission/answers"),
        Just("/submission/metadata"),
        Just("/submission/demographics/birthDate"),
        Just("/submission/demographics/email"),
        Just("/submission/demographics/gender"),
        Just("/submission/demographics/address"),
        Just("/submittedAt"),
    ];
    let mutated = (field, json_value()).prop_map(|(pointer, value)| {
        let mut body = serde_json::json!({
            "submissionId": "3f1c2a9e-5b7d-4c1e-9a2b-6d8e0f1a2b3c",
            "submission": {
                "demographics": {
                    "givenName": "Fuzz", "familyName": "Case", "birthDate": "1980-01-01", "gender": "female",
                    "birthSex": "female", "email": "fuzz@example.test", "phone": "+15555550100",
                    "address": { "lines": ["1 Main St"], "city": "Columbus", "state": "OH", "postalCode": "43004" }
                },
                "medication": "semaglutide", "answers": [], "metadata": {}
            }
        });
        if let Some(slot) = body.pointer_mut(pointer) {
            *slot = value;
        }
        body
    });
    runner
        .run(&prop_oneof![json_value(), mutated], |body| {
            let status = rt.block_on(async {
                let req = Request::post("/api/intake/submit")
                    .header("content-type", "application/json")
                    .header("x-forwarded-for", "203.0.113.9")
                    .body(Body::from(body.to_string()))
                    .unwrap();
                app.clone().oneshot(req).await.unwrap().status()
            });
            // Bad input is the client's (4xx); only input good enough to reach canvas (not running
            // here) may get 503.
            prop_assert!(status.is_client_error() || status == 503, "{status} for {body}");
            Ok(())
        })
        .unwrap();
}
