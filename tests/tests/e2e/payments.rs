//! The payments service against the Stripe sandbox over real HTTP: cards on file, off-session
//! charges exactly once per reference, declines, lost answers, refunds and discount codes.

use era_proto::payments::v1::{self as pb};
use era_tests::TestMesh;
use serde_json::json;
use tonic::Code;

/// Saves `card` (a Stripe test payment method) as the patient's hold.
async fn save_card(mesh: &TestMesh, patient: &str, card: &str) -> Result<pb::PaymentHold, tonic::Status> {
    let mut payments = mesh.payments();
    let setup = payments
        .create_setup_intent(mesh.admin_request(pb::CreateSetupIntentRequest {
            canvas_patient_id: patient.into(),
            submission_id: "sub-1".into(),
            email: format!("{patient}@example.test"),
            name: String::new(),
            idempotency_key: format!("setup-{card}"),
        }))
        .await?
        .into_inner();
    assert!(setup.client_secret.starts_with(&setup.setup_intent_id));
    let saved = payments
        .save_payment_method(mesh.admin_request(pb::SavePaymentMethodRequest {
            canvas_patient_id: patient.into(),
            setup_intent_id: setup.setup_intent_id,
            payment_method_id: card.into(),
            idempotency_key: String::new(),
        }))
        .await?
        .into_inner();
    Ok(saved.hold.unwrap())
}

fn charge(patient: &str, reference: &str, cents: i64) -> pb::ChargeHoldRequest {
    pb::ChargeHoldRequest {
        canvas_patient_id: patient.into(),
        amount_cents: cents,
        currency: String::new(),
        reference: reference.into(),
        description: "Compounded semaglutide, month 1".into(),
        idempotency_key: String::new(),
        actor: None,
    }
}

#[tokio::test]
async fn a_saved_card_is_charged_once_per_reference_even_twenty_at_once() {
    let mesh = TestMesh::start().await;
    let hold = save_card(&mesh, "pat-visa", "pm_card_visa").await.unwrap();
    assert_eq!(hold.status, pb::PaymentHoldStatus::Active as i32);
    let card = hold.card.unwrap();
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));
    assert!(hold.stripe_payment_method_id.starts_with("pm_") && hold.stripe_payment_method_id != "pm_card_visa");

    let mark = mesh.ledger_mark().await;
    let calls = (0..20).map(|_| {
        let mut client = mesh.payments();
        let req = mesh.admin_request(charge("pat-visa", "run-1:payment", 29_900));
        async move { client.charge_hold(req).await.map(|r| r.into_inner()) }
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let first = results.iter().find(|r| !r.existing).expect("one call made the charge");
    assert_eq!(results.iter().filter(|r| !r.existing).count(), 1);
    let charge_msg = first.charge.as_ref().unwrap();
    assert_eq!(charge_msg.status, pb::ChargeStatus::Succeeded as i32);
    assert_eq!(charge_msg.amount_cents, 29_900);
    assert!(results
        .iter()
        .all(|r| r.charge.as_ref().unwrap().stripe_payment_intent_id == charge_msg.stripe_payment_intent_id));
    let calls = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(calls.get("POST /stripe/v1/payment_intents"), Some(&1), "{calls:?}");

    // The same reference for another amount is refused; a refill charges the same card again.
    let err = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-visa", "run-1:payment", 100)))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("REFERENCE_CONFLICT"));
    let refill = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-visa", "refill-1", 29_900)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refill.charge.unwrap().status, pb::ChargeStatus::Succeeded as i32);

    // Bad input is named and changes nothing.
    let err = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-visa", "run 2", 0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> = era_kit::error::violations_of(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["reference", "amount_cents"]);
    let err = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-nobody", "run-3", 100)))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("NO_PAYMENT_HOLD"));
}

#[tokio::test]
async fn each_test_card_ends_where_stripe_says() {
    let mesh = TestMesh::start().await;
    // Declining cards cannot even be saved.
    let err = save_card(&mesh, "pat-declined", "pm_card_visa_chargeDeclined")
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("CARD_DECLINED"));

    // A card that saves but fails later: declined, with the reason, and not retried.
    save_card(&mesh, "pat-fail", "pm_card_chargeCustomerFail")
        .await
        .unwrap();
    let mark = mesh.ledger_mark().await;
    let declined = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-fail", "run-f", 29_900)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(declined.status, pb::ChargeStatus::Declined as i32);
    assert_eq!(declined.failure_code, "card_declined");
    assert!(!declined.stripe_payment_intent_id.is_empty());
    let again = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-fail", "run-f", 29_900)))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    let calls = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(
        calls.get("POST /stripe/v1/payment_intents"),
        Some(&1),
        "no automatic retry: {calls:?}"
    );

    // A card that needs the patient on every payment: saving it waits for 3-D Secure
    // (SETUP_NOT_SUCCEEDED until the patient completes it), and an off-session charge ends in
    // authentication_required, terminal.
    let mut payments = mesh.payments();
    let setup = payments
        .create_setup_intent(mesh.admin_request(pb::CreateSetupIntentRequest {
            canvas_patient_id: "pat-3ds".into(),
            idempotency_key: "setup-3ds".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let save = pb::SavePaymentMethodRequest {
        canvas_patient_id: "pat-3ds".into(),
        setup_intent_id: setup.setup_intent_id.clone(),
        payment_method_id: "pm_card_authenticationRequired".into(),
        idempotency_key: String::new(),
    };
    let err = payments
        .save_payment_method(mesh.admin_request(save.clone()))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("SETUP_NOT_SUCCEEDED"));
    let held = payments
        .get_payment_hold(mesh.admin_request(pb::GetPaymentHoldRequest {
            id: String::new(),
            canvas_patient_id: "pat-3ds".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&held).as_deref(), Some("NO_PAYMENT_HOLD"));
    // The patient completes 3-D Secure in the browser.
    let done = mesh
        .sandbox_post(&format!(
            "/_sandbox/stripe/setup_intents/{}/authenticate",
            setup.setup_intent_id
        ))
        .await;
    assert!(done.status().is_success());
    payments.save_payment_method(mesh.admin_request(save)).await.unwrap();
    let auth = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-3ds", "run-a", 29_900)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(auth.status, pb::ChargeStatus::AuthenticationRequired as i32);
}

#[tokio::test]
async fn a_charge_whose_answer_is_lost_is_made_once() {
    let mesh = TestMesh::start().await;
    save_card(&mesh, "pat-lost", "pm_card_visa").await.unwrap();
    // Stripe creates the PaymentIntent, then the connection drops before the answer.
    mesh.fault(json!({ "method": "POST", "path": "/stripe/v1/payment_intents", "times": 1, "action": { "kind": "drop_after" } }))
        .await;
    let mark = mesh.ledger_mark().await;
    let done = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-lost", "run-lost", 12_345)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(done.status, pb::ChargeStatus::Succeeded as i32);
    let calls = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(
        calls.get("POST /stripe/v1/payment_intents"),
        Some(&2),
        "the retry reused the key: {calls:?}"
    );
    let payment_intents = calls
        .iter()
        .filter(|(k, _)| k.starts_with("EFFECT payment_intent.succeeded"))
        .map(|(_, n)| n)
        .sum::<u64>();
    assert_eq!(payment_intents, 1, "one charge in Stripe: {calls:?}");
}

#[tokio::test]
async fn refunds_stay_within_what_was_charged_and_are_audited() {
    let mesh = TestMesh::start().await;
    save_card(&mesh, "pat-r", "pm_card_visa").await.unwrap();
    let charge = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-r", "run-r", 10_000)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    let refund = |amount: Option<i64>, key: &str| pb::RefundPaymentRequest {
        charge_id: charge.id.clone(),
        amount_cents: amount,
        reason: pb::RefundReason::RequestedByCustomer as i32,
        note: "patient changed their mind".into(),
        idempotency_key: key.into(),
        actor: None,
    };
    let mut payments = mesh.payments();
    let first = payments
        .refund_payment(mesh.admin_request(refund(Some(3_000), "r-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.refund.as_ref().unwrap().status,
        pb::RefundStatus::Succeeded as i32
    );
    assert_eq!(first.charge.as_ref().unwrap().amount_refunded_cents, 3_000);
    let replay = payments
        .refund_payment(mesh.admin_request(refund(Some(3_000), "r-1")))
        .await
        .unwrap()
        .into_inner();
    assert!(replay.existing);
    assert_eq!(replay.charge.unwrap().amount_refunded_cents, 3_000);
    let err = payments
        .refund_payment(mesh.admin_request(refund(Some(2_000), "r-1")))
        .await
        .unwrap_err();
    assert_eq!(
        era_kit::error::reason_of(&err).as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED")
    );
    payments
        .refund_payment(mesh.admin_request(refund(Some(3_000), "r-2")))
        .await
        .unwrap();
    let err = payments
        .refund_payment(mesh.admin_request(refund(Some(5_000), "r-3")))
        .await
        .unwrap_err();
    assert_eq!(
        era_kit::error::reason_of(&err).as_deref(),
        Some("AMOUNT_EXCEEDS_REFUNDABLE")
    );
    let rest = payments
        .refund_payment(mesh.admin_request(refund(None, "r-4")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.refund.unwrap().amount_cents, 4_000);
    assert_eq!(rest.charge.as_ref().unwrap().amount_refunded_cents, 10_000);
    let err = payments
        .refund_payment(mesh.admin_request(refund(None, "r-5")))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("ALREADY_REFUNDED"));
    let mut no_reason = refund(Some(1), "r-6");
    no_reason.reason = 0;
    assert_eq!(
        payments
            .refund_payment(mesh.admin_request(no_reason))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    // The audit names who refunded, and cannot be changed.
    let db = mesh.mesh.databases.iter().find(|d| d.ends_with("_payments")).unwrap();
    let pool = sqlx::PgPool::connect(&era_kit::testing::database_url(db))
        .await
        .unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as("select actor_subject, amount_cents from refund_audit order by id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), [3_000, 3_000, 4_000]);
    assert!(rows.iter().all(|r| r.0 == "admin-secret"));
    assert!(sqlx::query("update refund_audit set amount_cents = 0")
        .execute(&pool)
        .await
        .is_err());
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("set local session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(sqlx::query("delete from refund_audit").execute(&mut *tx).await.is_err());
    tx.rollback().await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn discount_codes_in_cents_with_a_reason_for_each_refusal() {
    let mesh = TestMesh::start().await;
    let check = |code: &str, cents: i64, currency: &str| {
        let mut payments = mesh.payments();
        let req = mesh.admin_request(pb::ValidateDiscountCodeRequest {
            code: code.into(),
            amount_cents: cents,
            currency: currency.into(),
        });
        async move { payments.validate_discount_code(req).await.unwrap().into_inner() }
    };
    let pct = check("WELCOME20", 29_900, "").await;
    assert_eq!(pct.status, pb::DiscountCodeStatus::Valid as i32);
    assert_eq!(
        (pct.discount_cents, pct.total_cents, pct.percent_off_basis_points),
        (5_980, 23_920, 2_000)
    );
    // 20 % of 333 cents is 66.6: the patient gets 67.
    assert_eq!(check("WELCOME20", 333, "usd").await.discount_cents, 67);
    let off = check("SAVE50", 29_900, "usd").await;
    assert_eq!(
        (off.discount_cents, off.total_cents, off.amount_off_cents),
        (5_000, 24_900, 5_000)
    );
    assert_eq!(check("SAVE50", 3_000, "usd").await.total_cents, 0, "never below zero");
    let promo = check("SPRING", 10_000, "usd").await;
    assert_eq!(promo.status, pb::DiscountCodeStatus::Valid as i32);
    assert_eq!((promo.coupon_id.as_str(), promo.discount_cents), ("WELCOME20", 2_000));
    assert!(!promo.promotion_code_id.is_empty());
    for (code, currency, status) in [
        ("EXPIRED10", "usd", pb::DiscountCodeStatus::Expired),
        ("ONCE", "usd", pb::DiscountCodeStatus::Exhausted),
        ("NOSUCHCODE", "usd", pb::DiscountCodeStatus::Invalid),
        ("SAVE50", "eur", pb::DiscountCodeStatus::CurrencyMismatch),
    ] {
        let v = check(code, 10_000, currency).await;
        assert_eq!(v.status, status as i32, "{code}");
        assert_eq!((v.discount_cents, v.total_cents), (0, 10_000), "{code}");
        assert!(!v.message.is_empty());
    }
}
