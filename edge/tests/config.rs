//! The edge refuses to start with secrets that would let one leak open another door.

mod common;

use era_kit::{testing::TestDb, SecretString};

#[tokio::test]
async fn the_internal_token_key_shares_its_value_with_no_other_secret() {
    let db = TestDb::empty().await;
    let valid = common::config(&db);
    valid.validate().expect("the shared test config is valid");
    let internal = valid.auth.internal_token_secret.clone();

    let mut same_as_admin = common::config(&db);
    same_as_admin.auth.admin_secret = internal.clone();
    let mut same_as_patient = common::config(&db);
    same_as_patient.secrets.patient_jwt_secret = internal.clone();
    let mut same_as_admin_jwt = common::config(&db);
    same_as_admin_jwt.secrets.admin_jwt_secret = Some(internal.clone());
    let mut among_pharmacy_secrets = common::config(&db);
    among_pharmacy_secrets.secrets.pharmacy_webhooks.strive = Some(SecretString::from(format!(
        "{},{}",
        "pharmacy-secret-0123456789abcdef0123456789",
        era_kit::ExposeSecret::expose_secret(&internal)
    )));
    for (config, var) in [
        (same_as_admin, "ADMIN_SECRET"),
        (same_as_patient, "PATIENT_JWT_SECRET"),
        (same_as_admin_jwt, "ADMIN_JWT_SECRET"),
        (among_pharmacy_secrets, "STRIVE_WEBHOOK_SECRET"),
    ] {
        let err = config.validate().expect_err(var);
        assert_eq!(err.var, "INTERNAL_TOKEN_SECRET", "{var}: {err}");
        assert!(err.reason.contains(var), "{err}");
    }
}

#[tokio::test]
async fn each_pharmacy_has_its_own_strong_callback_secret() {
    let db = TestDb::empty().await;
    let secret = |s: &str| Some(SecretString::from(s.to_owned()));
    let mut shared = common::config(&db);
    shared.secrets.pharmacy_webhooks.pioneerrx = secret("shared-pharmacy-secret-0123456789abcdef");
    shared.secrets.pharmacy_webhooks.strive =
        secret("strive-old-0123456789abcdef0123456789,shared-pharmacy-secret-0123456789abcdef");
    let err = shared.validate().unwrap_err();
    assert_eq!(err.var, "STRIVE_WEBHOOK_SECRET");
    assert!(err.reason.contains("PIONEERRX_WEBHOOK_SECRET"), "{err}");

    let mut weak = common::config(&db);
    weak.secrets.pharmacy_webhooks.boothwyn = secret("short");
    assert_eq!(weak.validate().unwrap_err().var, "BOOTHWYN_WEBHOOK_SECRET");

    let mut own = common::config(&db);
    own.secrets.pharmacy_webhooks.pioneerrx = secret("gmp-secret-0123456789abcdef0123456789");
    own.secrets.pharmacy_webhooks.boothwyn = secret("boothwyn-secret-0123456789abcdef01234");
    own.validate().unwrap();
}
