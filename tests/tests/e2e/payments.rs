//! The payments service against the Stripe sandbox over real HTTP: cards on file, off-session
//! charges exactly once per reference, declines, lost answers, refunds and discount codes.

use era_proto::payments::v1::{self as pb};
use era_tests::TestMesh;
use serde_json::json;
use tonic::Code;

/// Saves `card` (a Stripe test payment method) as the patient's hold.
pub(crate) async fn save_card(mesh: &TestMesh, patient: &str, card: &str) -> Result<pb::PaymentHold, tonic::Status> {
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
        description: "Order, month 1".into(),
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
            promotion_codes_only: false,
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
    // A promotion code with a minimum order: met at the minimum, refused with its reason below it.
    let big = check("BIGORDER", 15_000, "usd").await;
    assert_eq!(
        (big.status, big.discount_cents, big.total_cents),
        (pb::DiscountCodeStatus::Valid as i32, 5_000, 10_000)
    );
    let small = check("BIGORDER", 14_999, "usd").await;
    assert_eq!(small.status, pb::DiscountCodeStatus::MinimumNotMet as i32);
    assert_eq!((small.discount_cents, small.total_cents), (0, 14_999));
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

/// Stops the sandbox delivering Stripe's events (they stay listed for later delivery).
async fn pause_webhooks(mesh: &TestMesh) {
    let paused = mesh
        .sandbox
        .put(mesh.sandbox_url("/_sandbox/stripe/webhook"))
        .json(&json!({ "paused": true }))
        .send()
        .await
        .unwrap();
    assert!(paused.status().is_success());
}

/// Polls `check` for up to ten seconds (webhook deliveries are asynchronous).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn stripe_webhooks_update_state_once_whatever_the_order_or_repetition() {
    let mesh = TestMesh::start().await;
    // A refund that Stripe settles later: pending now, succeeded when Stripe's event arrives.
    save_card(&mesh, "pat-wh", "pm_card_pendingRefund").await.unwrap();
    let charge = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-wh", "run-wh", 8_000)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    let refund = mesh
        .payments()
        .refund_payment(mesh.admin_request(pb::RefundPaymentRequest {
            charge_id: charge.id.clone(),
            amount_cents: Some(2_500),
            reason: pb::RefundReason::Duplicate as i32,
            note: String::new(),
            idempotency_key: "wh-refund".into(),
            actor: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let refund = refund.refund.unwrap();
    assert_eq!(refund.status, pb::RefundStatus::Pending as i32);
    let settled = mesh
        .sandbox_post(&format!("/_sandbox/stripe/refunds/{}/settle", refund.stripe_refund_id))
        .await;
    assert!(settled.status().is_success());
    let get = || {
        let mut payments = mesh.payments();
        let req = mesh.admin_request(pb::GetChargeRequest {
            id: charge.id.clone(),
            reference: String::new(),
        });
        async move { payments.get_charge(req).await.unwrap().into_inner().charge.unwrap() }
    };
    eventually("the refund settling through its webhook", || async {
        let c = get().await;
        c.amount_refunded_cents == 2_500 && c.refunds[0].status == pb::RefundStatus::Succeeded as i32
    })
    .await;

    // Every event so far, delivered three more times each in shuffled order: no second effect.
    let events: serde_json::Value = mesh
        .sandbox
        .get(mesh.sandbox_url("/_sandbox/stripe/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() >= 4, "{ids:?}");
    let mut shuffled: Vec<String> = ids.iter().chain(ids.iter()).chain(ids.iter()).cloned().collect();
    shuffled.reverse();
    shuffled.rotate_left(ids.len() / 2);
    let resp = mesh
        .sandbox
        .post(mesh.sandbox_url("/_sandbox/stripe/deliver"))
        .json(&json!({ "events": shuffled }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let after = get().await;
    assert_eq!(after.amount_refunded_cents, 2_500);
    assert_eq!(after.refunds.len(), 1);
    assert_eq!(after.status, pb::ChargeStatus::Succeeded as i32);
    let db = mesh.mesh.databases.iter().find(|d| d.ends_with("_payments")).unwrap();
    let pool = sqlx::PgPool::connect(&era_kit::testing::database_url(db))
        .await
        .unwrap();
    let stored: Vec<(String, bool)> =
        sqlx::query_as("select id, processed_at is not null from stripe_events order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    ids.sort();
    assert_eq!(
        stored.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        ids,
        "each event stored once"
    );
    assert!(stored.iter().all(|s| s.1), "each processed");
    let audits: i64 = sqlx::query_scalar("select count(*) from refund_audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audits, 1);
    pool.close().await;

    // A card confirmed in the browser becomes the hold through setup_intent.succeeded alone.
    let setup = mesh
        .payments()
        .create_setup_intent(mesh.admin_request(pb::CreateSetupIntentRequest {
            canvas_patient_id: "pat-browser".into(),
            idempotency_key: "setup-browser".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let confirm = mesh
        .sandbox
        .post(mesh.sandbox_url(&format!("/stripe/v1/setup_intents/{}/confirm", setup.setup_intent_id)))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(
            &mesh.mesh.secrets.stripe_secret_key,
        ))
        .form(&[("payment_method", "pm_card_mastercard")])
        .send()
        .await
        .unwrap();
    assert!(confirm.status().is_success(), "{}", confirm.text().await.unwrap());
    eventually("the hold from setup_intent.succeeded", || async {
        mesh.payments()
            .get_payment_hold(mesh.admin_request(pb::GetPaymentHoldRequest {
                id: String::new(),
                canvas_patient_id: "pat-browser".into(),
            }))
            .await
            .is_ok_and(|h| h.into_inner().hold.unwrap().card.unwrap().brand == "mastercard")
    })
    .await;
}

#[tokio::test]
async fn the_webhook_route_refuses_what_stripe_did_not_sign() {
    let mesh = TestMesh::start().await;
    let body =
        r#"{"id":"evt_forged","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_x"}}}"#;
    let post = |signature: String| {
        mesh.http
            .post(mesh.url("/api/webhooks/stripe"))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let secret = secrecy::ExposeSecret::expose_secret(&mesh.mesh.secrets.stripe_webhook_secret).to_owned();
    let now = chrono::Utc::now().timestamp();
    let stale = era_sandbox::stripe::signature_header(&secret, now - 301, body);
    assert_eq!(
        era_tests::error_code(post(stale).await.unwrap(), 400).await,
        "invalid_signature"
    );
    let wrong = era_sandbox::stripe::signature_header("whsec_not_ours", now, body);
    assert_eq!(
        era_tests::error_code(post(wrong).await.unwrap(), 400).await,
        "invalid_signature"
    );
    assert_eq!(
        era_tests::error_code(post(String::new()).await.unwrap(), 400).await,
        "invalid_signature"
    );
    // Signed properly, it is stored and processed (an unknown PaymentIntent changes nothing).
    let good = era_sandbox::stripe::signature_header(&secret, now, body);
    let ok: serde_json::Value = post(good.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(ok["processed"], true);
    let again: serde_json::Value = post(good).await.unwrap().json().await.unwrap();
    assert_eq!(again["processed"], false, "a re-delivery has no second effect");
}

#[tokio::test]
async fn admins_charge_refund_and_list_through_the_edge() {
    let mesh = TestMesh::start().await;
    save_card(&mesh, "pat-edge", "pm_card_visa").await.unwrap();
    let jwt = mesh.admin_jwt("billing@yourera.test");
    let post = |path: &str, key: Option<&str>, body: serde_json::Value| {
        let mut req = mesh.http.post(mesh.url(path)).bearer_auth(&jwt).json(&body);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.send()
    };
    let body = json!({ "canvasPatientId": "pat-edge", "amountCents": 29_900, "reference": "order-1" });
    let first: serde_json::Value = post("/api/admin/charge-hold", Some("k-1"), body.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["charge"]["status"], "succeeded", "{first}");
    assert_eq!(first["existing"], false);
    let again: serde_json::Value = post("/api/admin/charge-hold", Some("k-1"), body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["existing"], true);
    assert_eq!(again["charge"]["id"], first["charge"]["id"]);
    let other = json!({ "canvasPatientId": "pat-edge", "amountCents": 100, "reference": "order-2" });
    let reused = post("/api/admin/charge-hold", Some("k-1"), other).await.unwrap();
    assert_eq!(era_tests::error_code(reused, 422).await, "idempotency_key_reused");

    let charge_id = first["charge"]["id"].as_str().unwrap();
    let refund =
        json!({ "chargeId": charge_id, "amountCents": 900, "reason": "requested_by_customer", "note": "late" });
    let no_key = post("/api/admin/refund", None, refund.clone()).await.unwrap();
    assert_eq!(era_tests::error_code(no_key, 400).await, "invalid_argument");
    let refunded: serde_json::Value = post("/api/admin/refund", Some("r-1"), refund)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refunded["refund"]["status"], "succeeded", "{refunded}");
    assert_eq!(refunded["refund"]["requestedBy"], "billing@yourera.test");
    assert_eq!(refunded["charge"]["amountRefundedCents"], 900);

    let orders: serde_json::Value = mesh
        .get("/api/admin/orders?status=succeeded", Some(&jwt))
        .await
        .json()
        .await
        .unwrap();
    let items = orders["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["refunds"][0]["reason"], "requested_by_customer");
    let tab: serde_json::Value = mesh
        .get("/api/admin/patients/pat-edge/payments", Some(&jwt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tab["holds"][0]["status"], "active");
    assert_eq!(tab["holds"][0]["cardLast4"], "4242");
    assert_eq!(tab["charges"][0]["id"], first["charge"]["id"]);

    // The intake form checks promotion codes without credentials; a raw coupon id is not one
    // there (staff check those over gRPC); admin routes need credentials.
    let check = |code: &'static str| {
        mesh.http
            .post(mesh.url("/api/intake/discount/validate"))
            .json(&json!({ "code": code, "amountCents": 29_900 }))
            .send()
    };
    let code: serde_json::Value = check("BIGORDER").await.unwrap().json().await.unwrap();
    assert_eq!(
        (code["status"].as_str(), code["totalCents"].as_i64()),
        (Some("valid"), Some(24_900))
    );
    let coupon: serde_json::Value = check("SAVE50").await.unwrap().json().await.unwrap();
    assert_eq!(
        (coupon["status"].as_str(), coupon["discountCents"].as_i64()),
        (Some("invalid"), Some(0)),
        "{coupon}"
    );
    let anonymous = mesh
        .http
        .post(mesh.url("/api/admin/charge-hold"))
        .json(&json!({ "canvasPatientId": "pat-edge", "amountCents": 100, "reference": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn charges_and_refunds_left_unfinished_are_finished_by_the_worker() {
    let mesh = TestMesh::start_with(|o| {
        o.payments_resume = era_payments::config::ResumeConfig {
            every_secs: 1,
            quiet_secs: 1,
        };
    })
    .await;
    save_card(&mesh, "pat-resume", "pm_card_visa").await.unwrap();
    // Stripe's events would settle these too; held back, only the worker can.
    pause_webhooks(&mesh).await;
    let mark = mesh.ledger_mark().await;
    // Stripe makes the charge but every answer is lost, for longer than the caller retries.
    mesh.fault(json!({ "method": "POST", "path": "/stripe/v1/payment_intents", "times": 3, "action": { "kind": "drop_after" } }))
        .await;
    let err = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-resume", "run-resume", 4_200)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Nobody calls again: the worker finishes it under the same key.
    let get = |reference: &str| {
        let mut client = mesh.payments();
        let req = mesh.admin_request(pb::GetChargeRequest {
            id: String::new(),
            reference: reference.into(),
        });
        async move { client.get_charge(req).await.unwrap().into_inner().charge.unwrap() }
    };
    eventually("the worker finishing the charge", || async {
        get("run-resume").await.status == pb::ChargeStatus::Succeeded as i32
    })
    .await;
    let calls = mesh.ledger_counts("stripe", mark).await;
    let effects: u64 = calls
        .iter()
        .filter(|(k, _)| k.starts_with("EFFECT payment_intent.succeeded"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(effects, 1, "one charge in Stripe: {calls:?}");
    let charge_id = get("run-resume").await.id;

    // A refund Stripe never heard of (the connection drops before it arrives) is sent later.
    mesh.fault(
        json!({ "method": "POST", "path": "/stripe/v1/refunds", "times": 3, "action": { "kind": "drop_before" } }),
    )
    .await;
    let err = mesh
        .payments()
        .refund_payment(mesh.admin_request(pb::RefundPaymentRequest {
            charge_id: charge_id.clone(),
            amount_cents: Some(1_000),
            reason: pb::RefundReason::RequestedByCustomer as i32,
            note: "resume test".into(),
            idempotency_key: "refund-resume".into(),
            actor: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    eventually("the worker finishing the refund", || async {
        get("run-resume").await.amount_refunded_cents == 1_000
    })
    .await;
    let refunded = get("run-resume").await;
    assert_eq!(refunded.refunds.len(), 1);
    assert_eq!(refunded.refunds[0].status, pb::RefundStatus::Succeeded as i32);
    let calls = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(
        calls.get("EFFECT refund.created"),
        Some(&1),
        "one refund in Stripe: {calls:?}"
    );
}

#[tokio::test]
async fn the_audit_names_the_caller_and_whom_a_service_acted_for() {
    let mesh = TestMesh::start().await;
    save_card(&mesh, "pat-actor", "pm_card_visa").await.unwrap();
    let practitioner = era_proto::common::v1::Actor {
        subject: "practitioner:4150cd20de8a470aa570a852859ac87e".into(),
        role: "practitioner".into(),
    };
    let pipeline = era_kit::auth::Caller::service("era-pharmacy-routing");
    let mut req = charge("pat-actor", "run-actor", 5_000);
    req.actor = Some(practitioner.clone());
    let made = mesh
        .payments()
        .charge_hold(mesh.request_as(req, &pipeline))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(made.created_by.as_ref().unwrap().subject, "era-pharmacy-routing");
    assert_eq!(made.created_by.as_ref().unwrap().role, "service");
    assert_eq!(made.on_behalf_of.as_ref(), Some(&practitioner));

    // An admin's request says who they are; a body claiming someone else is not recorded.
    let mut req = charge("pat-actor", "run-admin", 5_000);
    req.actor = Some(practitioner.clone());
    let by_admin = mesh
        .payments()
        .charge_hold(mesh.admin_request(req))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(by_admin.created_by.as_ref().unwrap().role, "admin");
    assert_eq!(by_admin.on_behalf_of, None);

    // The refund's audit row keeps both too.
    let refund = mesh
        .payments()
        .refund_payment(mesh.request_as(
            pb::RefundPaymentRequest {
                charge_id: made.id.clone(),
                amount_cents: None,
                reason: pb::RefundReason::Duplicate as i32,
                note: String::new(),
                idempotency_key: "refund-actor".into(),
                actor: Some(practitioner.clone()),
            },
            &pipeline,
        ))
        .await
        .unwrap()
        .into_inner()
        .refund
        .unwrap();
    assert_eq!(refund.requested_by.as_ref().unwrap().subject, "era-pharmacy-routing");
    assert_eq!(refund.on_behalf_of.as_ref(), Some(&practitioner));

    // An actor that is not a plain name is refused, naming the field.
    let mut req = charge("pat-actor", "run-bad-actor", 5_000);
    req.actor = Some(era_proto::common::v1::Actor {
        subject: "x\n".repeat(2),
        role: "practitioner".into(),
    });
    let err = mesh
        .payments()
        .charge_hold(mesh.request_as(req, &pipeline))
        .await
        .unwrap_err();
    let fields: Vec<_> = era_kit::error::violations_of(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["actor.subject"]);

    // Patients charge and refund nothing, and see only their own charges (another's is absent).
    let stranger = era_kit::auth::Caller::patient("pat-stranger");
    let err = mesh
        .payments()
        .charge_hold(mesh.request_as(charge("pat-stranger", "run-self", 5_000), &stranger))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let get = |caller: &era_kit::auth::Caller| {
        let mut client = mesh.payments();
        let req = mesh.request_as(
            pb::GetChargeRequest {
                id: made.id.clone(),
                reference: String::new(),
            },
            caller,
        );
        async move { client.get_charge(req).await }
    };
    assert_eq!(get(&stranger).await.unwrap_err().code(), Code::NotFound);
    let own = get(&era_kit::auth::Caller::patient("pat-actor"))
        .await
        .unwrap()
        .into_inner();
    let own = own.charge.unwrap();
    assert_eq!(own.id, made.id);
    // ... without the staff behind it.
    assert_eq!((own.created_by, own.on_behalf_of), (None, None));
    assert!(own
        .refunds
        .iter()
        .all(|r| r.requested_by.is_none() && r.on_behalf_of.is_none()));
}

#[tokio::test]
async fn a_charge_whose_every_answer_was_lost_is_settled_by_its_webhook() {
    let mesh = TestMesh::start().await;
    save_card(&mesh, "pat-hint", "pm_card_visa").await.unwrap();
    let mark = mesh.ledger_mark().await;
    mesh.fault(json!({ "method": "POST", "path": "/stripe/v1/payment_intents", "times": 3, "action": { "kind": "drop_after" } }))
        .await;
    let err = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge("pat-hint", "run-hint", 7_700)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    // We never learned the PaymentIntent's id; Stripe's event names the charge in its metadata.
    let get = || {
        let mut client = mesh.payments();
        let req = mesh.admin_request(pb::GetChargeRequest {
            id: String::new(),
            reference: "run-hint".into(),
        });
        async move { client.get_charge(req).await.unwrap().into_inner().charge.unwrap() }
    };
    eventually("the webhook settling the charge", || async {
        get().await.status == pb::ChargeStatus::Succeeded as i32
    })
    .await;
    assert!(get().await.stripe_payment_intent_id.starts_with("pi_"));
    let calls = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(
        calls.get("POST /stripe/v1/payment_intents"),
        Some(&3),
        "not sent again: {calls:?}"
    );
}

#[tokio::test]
async fn the_intake_form_saves_the_card_with_its_submission_token() {
    let mesh = TestMesh::start().await;
    let body = super::rx_queue::intake_body(&uuid::Uuid::new_v4().to_string(), "card.holder@example.test", "OH");
    let submitted = mesh
        .http
        .post(mesh.url("/api/intake/submit"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 201);
    let submitted: serde_json::Value = submitted.json().await.unwrap();
    let patient = submitted["canvasPatientId"].as_str().unwrap().to_owned();
    let token = submitted["intakeToken"].as_str().unwrap().to_owned();
    assert!(!submitted["intakeTokenExpiresAt"].as_str().unwrap().is_empty());
    let post = |path: &str, bearer: Option<&str>, body: serde_json::Value| {
        let mut req = mesh.http.post(mesh.url(path)).json(&body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };

    let mark = mesh.ledger_mark().await;
    let setup = post(
        "/api/intake/setup-intent",
        Some(&token),
        json!({ "email": "card.holder@example.test" }),
    )
    .await
    .unwrap();
    assert_eq!(setup.status(), 200);
    let setup: serde_json::Value = setup.json().await.unwrap();
    let setup_id = setup["setupIntentId"].as_str().unwrap().to_owned();
    assert!(setup["clientSecret"].as_str().unwrap().starts_with(&setup_id));
    // An intake token cannot ask for more SetupIntents.
    let more = mesh
        .http
        .post(mesh.url("/api/intake/setup-intent"))
        .bearer_auth(&token)
        .header("idempotency-key", "another")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(era_tests::error_code(more, 400).await, "invalid_argument");
    // The same token again is the same SetupIntent (a double click makes one).
    let again: serde_json::Value = post("/api/intake/setup-intent", Some(&token), json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["setupIntentId"], setup_id.as_str());
    let calls = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(calls.get("POST /stripe/v1/setup_intents"), Some(&2), "{calls:?}");

    let saved = post(
        "/api/intake/payment-method",
        Some(&token),
        json!({ "setupIntentId": setup_id, "paymentMethodId": "pm_card_visa" }),
    )
    .await
    .unwrap();
    assert_eq!(saved.status(), 200);
    let saved: serde_json::Value = saved.json().await.unwrap();
    assert_eq!(saved["hold"]["status"], "active");
    assert_eq!(saved["hold"]["cardLast4"], "4242");
    // The card is the patient's: the approval's charge finds it.
    let charged = mesh
        .payments()
        .charge_hold(mesh.admin_request(charge(&patient, "run-intake", 19_900)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(charged.status, pb::ChargeStatus::Succeeded as i32);

    // Who may not: no token, ADMIN_SECRET or an admin session, a forged token, the token on other
    // routes, and another patient's token on this patient's SetupIntent.
    let code = |r: reqwest::Response, s: u16| era_tests::error_code(r, s);
    assert_eq!(
        code(post("/api/intake/setup-intent", None, json!({})).await.unwrap(), 401).await,
        "missing_credentials"
    );
    let secret = mesh.admin_secret();
    assert_eq!(
        code(
            post("/api/intake/setup-intent", Some(&secret), json!({}))
                .await
                .unwrap(),
            403
        )
        .await,
        "forbidden"
    );
    let forged = mesh.patient_tokens().issue(&patient).token.replace('.', ".x");
    assert_eq!(
        code(
            post("/api/intake/setup-intent", Some(&forged), json!({}))
                .await
                .unwrap(),
            401
        )
        .await,
        "invalid_token"
    );
    let records = mesh.get(&format!("/api/patient-records/{patient}"), Some(&token)).await;
    assert_eq!(code(records, 401).await, "invalid_token");
    let other = mesh.patient_tokens().issue("another-patient").token;
    let theirs = post(
        "/api/intake/payment-method",
        Some(&other),
        json!({ "setupIntentId": setup_id }),
    )
    .await
    .unwrap();
    assert_eq!(code(theirs, 404).await, "not_found");
    // Bad input is named.
    let bad = post(
        "/api/intake/payment-method",
        Some(&token),
        json!({ "setupIntentId": "si/../x" }),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["fields"][0]["field"], "setupIntentId", "{bad}");

    // The signed-in patient (portal) may replace the card the same way.
    let portal = mesh.patient_tokens().issue(&patient).token;
    let setup: serde_json::Value = post("/api/intake/setup-intent", Some(&portal), json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replaced: serde_json::Value = post(
        "/api/intake/payment-method",
        Some(&portal),
        json!({ "setupIntentId": setup["setupIntentId"], "paymentMethodId": "pm_card_mastercard" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(replaced["hold"]["cardBrand"], "mastercard", "{replaced}");
}

#[tokio::test]
async fn the_rest_of_the_test_cards_and_refunds_racing_under_different_keys() {
    let mesh = TestMesh::start().await;
    // Cards Stripe refuses to attach: refused at saving, with the hold marked failed.
    for card in [
        "pm_card_chargeDeclinedInsufficientFunds",
        "pm_card_chargeDeclinedProcessingError",
    ] {
        let err = save_card(&mesh, &format!("pat-{}", card.len()), card)
            .await
            .unwrap_err();
        assert_eq!(
            era_kit::error::reason_of(&err).as_deref(),
            Some("CARD_DECLINED"),
            "{card}"
        );
    }
    // The server-side confirmation is bounded per SetupIntent: the public card route must not become
    // a way to try card after card.
    let mut payments = mesh.payments();
    let tester = payments
        .create_setup_intent(mesh.admin_request(pb::CreateSetupIntentRequest {
            canvas_patient_id: "pat-tester".into(),
            idempotency_key: "setup-tester".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    for attempt in 1..=6 {
        let err = payments
            .save_payment_method(mesh.admin_request(pb::SavePaymentMethodRequest {
                canvas_patient_id: "pat-tester".into(),
                setup_intent_id: tester.setup_intent_id.clone(),
                payment_method_id: "pm_card_chargeDeclined".into(),
                idempotency_key: String::new(),
            }))
            .await
            .unwrap_err();
        let expected = if attempt <= 5 {
            "CARD_DECLINED"
        } else {
            "TOO_MANY_CARD_ATTEMPTS"
        };
        assert_eq!(
            era_kit::error::reason_of(&err).as_deref(),
            Some(expected),
            "attempt {attempt}"
        );
    }
    // 3-D Secure at set-up only: once the patient authenticates, off-session charges go through.
    let setup = payments
        .create_setup_intent(mesh.admin_request(pb::CreateSetupIntentRequest {
            canvas_patient_id: "pat-onsetup".into(),
            idempotency_key: "setup-onsetup".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let save = pb::SavePaymentMethodRequest {
        canvas_patient_id: "pat-onsetup".into(),
        setup_intent_id: setup.setup_intent_id.clone(),
        payment_method_id: "pm_card_authenticationRequiredOnSetup".into(),
        idempotency_key: String::new(),
    };
    let err = payments
        .save_payment_method(mesh.admin_request(save.clone()))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("SETUP_NOT_SUCCEEDED"));
    mesh.sandbox_post(&format!(
        "/_sandbox/stripe/setup_intents/{}/authenticate",
        setup.setup_intent_id
    ))
    .await;
    payments.save_payment_method(mesh.admin_request(save)).await.unwrap();
    let paid = payments
        .charge_hold(mesh.admin_request(charge("pat-onsetup", "run-onsetup", 10_000)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(paid.status, pb::ChargeStatus::Succeeded as i32);
    // Set up for off-session use: saved and charged without the patient.
    save_card(
        &mesh,
        "pat-offsession",
        "pm_card_authenticationRequiredSetupForOffSession",
    )
    .await
    .unwrap();
    let paid = payments
        .charge_hold(mesh.admin_request(charge("pat-offsession", "run-offsession", 10_000)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(paid.status, pb::ChargeStatus::Succeeded as i32);

    // Five admins refund $30.00 each of a $100.00 charge at once, each under their own key: the
    // refunds are taken one at a time, so three go through and the others are told what remains.
    let mark = mesh.ledger_mark().await;
    let calls = (0..5).map(|i| {
        let mut client = mesh.payments();
        let req = mesh.admin_request(pb::RefundPaymentRequest {
            charge_id: paid.id.clone(),
            amount_cents: Some(3_000),
            reason: pb::RefundReason::RequestedByCustomer as i32,
            note: format!("admin {i}"),
            idempotency_key: format!("race-{i}"),
            actor: None,
        });
        async move { client.refund_payment(req).await }
    });
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3, "{results:?}");
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            era_kit::error::reason_of(err).as_deref(),
            Some("AMOUNT_EXCEEDS_REFUNDABLE")
        );
        assert!(err.message().contains("1000 cents"), "{}", err.message());
    }
    let counts = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(counts.get("EFFECT refund.created"), Some(&3), "{counts:?}");

    // A refund Stripe reports succeeded and later failed: the money is back to refundable.
    save_card(&mesh, "pat-refundfail", "pm_card_refundFail").await.unwrap();
    let c = payments
        .charge_hold(mesh.admin_request(charge("pat-refundfail", "run-refundfail", 5_000)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    let r = payments
        .refund_payment(mesh.admin_request(pb::RefundPaymentRequest {
            charge_id: c.id.clone(),
            amount_cents: None,
            reason: pb::RefundReason::RequestedByCustomer as i32,
            note: String::new(),
            idempotency_key: "refundfail-1".into(),
            actor: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.refund.as_ref().unwrap().status, pb::RefundStatus::Succeeded as i32);
    assert_eq!(r.charge.as_ref().unwrap().amount_refunded_cents, 5_000);
    let stripe_id = r.refund.unwrap().stripe_refund_id;
    assert!(mesh
        .sandbox_post(&format!("/_sandbox/stripe/refunds/{stripe_id}/settle"))
        .await
        .status()
        .is_success());
    let get = || {
        let mut client = mesh.payments();
        let req = mesh.admin_request(pb::GetChargeRequest {
            id: c.id.clone(),
            reference: String::new(),
        });
        async move { client.get_charge(req).await.unwrap().into_inner().charge.unwrap() }
    };
    eventually("the failed refund reaching the charge", || async {
        let c = get().await;
        c.amount_refunded_cents == 0 && c.refunds[0].status == pb::RefundStatus::Failed as i32
    })
    .await;
}

fn hold(patient: &str, reference: &str, cents: i64) -> pb::AuthorizeHoldRequest {
    let c = charge(patient, reference, cents);
    pb::AuthorizeHoldRequest {
        canvas_patient_id: c.canvas_patient_id,
        amount_cents: c.amount_cents,
        currency: c.currency,
        reference: c.reference,
        description: c.description,
        idempotency_key: c.idempotency_key,
        actor: c.actor,
    }
}

#[tokio::test]
async fn an_authorisation_is_captured_or_released_once() {
    let mesh = TestMesh::start().await;
    save_card(&mesh, "pat-auth", "pm_card_visa").await.unwrap();
    let mut payments = mesh.payments();
    let mark = mesh.ledger_mark().await;
    // Held, not charged: the PaymentIntent waits for capture.
    let held = payments
        .authorize_hold(mesh.admin_request(hold("pat-auth", "run-a:payment", 19_900)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(held.status, pb::ChargeStatus::Authorized as i32);
    let again = payments
        .authorize_hold(mesh.admin_request(hold("pat-auth", "run-a:payment", 19_900)))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    // The same reference as an immediate charge is another request.
    let err = payments
        .charge_hold(mesh.admin_request(charge("pat-auth", "run-a:payment", 19_900)))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("REFERENCE_CONFLICT"));
    let capture = || {
        let mut client = mesh.payments();
        let req = mesh.admin_request(pb::CaptureChargeRequest {
            charge_id: held.id.clone(),
            actor: None,
        });
        async move { client.capture_charge(req).await }
    };
    let captured = capture().await.unwrap().into_inner().charge.unwrap();
    assert_eq!(captured.status, pb::ChargeStatus::Succeeded as i32);
    assert_eq!(
        capture().await.unwrap().into_inner().charge.unwrap().status,
        pb::ChargeStatus::Succeeded as i32
    );
    let counts = mesh.ledger_counts("stripe", mark).await;
    assert_eq!(counts.get("POST /stripe/v1/payment_intents"), Some(&1), "{counts:?}");
    let captures: u64 = counts
        .iter()
        .filter(|(k, _)| k.starts_with("POST /stripe/v1/payment_intents/") && k.ends_with("/capture"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(captures, 1, "the second capture found it captured: {counts:?}");
    let release = |id: &str| {
        let mut client = mesh.payments();
        let req = mesh.admin_request(pb::CancelAuthorizationRequest {
            charge_id: id.to_owned(),
            actor: None,
        });
        async move { client.cancel_authorization(req).await }
    };
    let err = release(&held.id).await.unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("ALREADY_CAPTURED"));

    // Another hold released (the pharmacy refused): canceled, and not capturable after.
    let second = payments
        .authorize_hold(mesh.admin_request(hold("pat-auth", "run-b:payment", 19_900)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    let released = release(&second.id).await.unwrap().into_inner().charge.unwrap();
    assert_eq!(released.status, pb::ChargeStatus::Canceled as i32);
    assert_eq!(
        release(&second.id).await.unwrap().into_inner().charge.unwrap().status,
        pb::ChargeStatus::Canceled as i32
    );
    let err = payments
        .capture_charge(mesh.admin_request(pb::CaptureChargeRequest {
            charge_id: second.id.clone(),
            actor: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("NOT_AUTHORIZED"));

    // A card that fails ends the hold declined, like a charge; an immediate charge cannot be
    // "captured".
    save_card(&mesh, "pat-auth-fail", "pm_card_chargeCustomerFail")
        .await
        .unwrap();
    let declined = payments
        .authorize_hold(mesh.admin_request(hold("pat-auth-fail", "run-c:payment", 19_900)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    assert_eq!(declined.status, pb::ChargeStatus::Declined as i32);
    let immediate = payments
        .charge_hold(mesh.admin_request(charge("pat-auth", "run-d", 1_000)))
        .await
        .unwrap()
        .into_inner()
        .charge
        .unwrap();
    let err = payments
        .capture_charge(mesh.admin_request(pb::CaptureChargeRequest {
            charge_id: immediate.id,
            actor: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("NOT_AUTHORIZED"));
}

/// Card testing through the public card routes, as an attacker would try it: one intake replayed
/// for more tokens, every token and a portal session with fresh keys, sixty cards. The caps stop it,
/// Stripe sees no more confirmations than the cap, and no answer says why a card was declined.
#[tokio::test]
async fn card_testing_across_replays_tokens_and_keys_is_stopped_at_the_cap() {
    let mesh = TestMesh::start().await;
    let body = super::rx_queue::intake_body(&uuid::Uuid::new_v4().to_string(), "card.tester@example.test", "OH");
    let submit = || mesh.http.post(mesh.url("/api/intake/submit")).json(&body).send();
    let first: serde_json::Value = submit().await.unwrap().json().await.unwrap();
    let patient = first["canvasPatientId"].as_str().unwrap().to_owned();
    let mut tokens = vec![first["intakeToken"].as_str().unwrap().to_owned()];
    for _ in 0..5 {
        let replay: serde_json::Value = submit().await.unwrap().json().await.unwrap();
        tokens.push(replay["intakeToken"].as_str().unwrap().to_owned());
    }
    let portal = mesh.patient_tokens().issue(&patient).token;
    let post = |path: &str, bearer: &str, key: Option<String>, body: serde_json::Value| {
        let mut req = mesh.http.post(mesh.url(path)).bearer_auth(bearer).json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        req.send()
    };
    let mark = mesh.ledger_mark().await;

    // Every replayed submission's token opens the same one SetupIntent.
    let mut intake_setup = None;
    for token in &tokens {
        let setup: serde_json::Value = post("/api/intake/setup-intent", token, None, json!({}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = setup["setupIntentId"].as_str().unwrap().to_owned();
        assert_eq!(
            intake_setup.get_or_insert(id.clone()),
            &id,
            "one SetupIntent per submission"
        );
    }
    let cards = [
        "pm_card_chargeDeclinedIncorrectCvc",
        "pm_card_chargeDeclinedExpiredCard",
        "pm_card_visa_chargeDeclined",
        "pm_card_chargeDeclinedFraudulent",
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
    ];
    let (mut declined, mut capped, mut setups_refused) = (0, 0, 0);
    for i in 0..60 {
        let card = cards[i % cards.len()];
        // Half through the intake's tokens, half through the portal with a fresh key every third
        // time (a repeated key is the same SetupIntent).
        let (bearer, setup) = if i % 2 == 0 {
            (tokens[i % tokens.len()].clone(), intake_setup.clone().unwrap())
        } else {
            let fresh = post(
                "/api/intake/setup-intent",
                &portal,
                Some(format!("tester-{}", i / 6)),
                json!({}),
            )
            .await
            .unwrap();
            if fresh.status() == 429 {
                setups_refused += 1;
                continue;
            }
            let fresh: serde_json::Value = fresh.json().await.unwrap();
            (portal.clone(), fresh["setupIntentId"].as_str().unwrap().to_owned())
        };
        let tried = post(
            "/api/intake/payment-method",
            &bearer,
            None,
            json!({ "setupIntentId": setup, "paymentMethodId": card }),
        )
        .await
        .unwrap();
        match tried.status().as_u16() {
            422 => {
                let body: serde_json::Value = tried.json().await.unwrap();
                assert_eq!(body["error"]["code"], "card_declined");
                let text = body.to_string().to_lowercase();
                for leak in ["cvc", "expired", "insufficient", "fraud", "velocity", "security code"] {
                    assert!(
                        !text.contains(leak),
                        "the answer says why the card was declined: {text}"
                    );
                }
                declined += 1;
            }
            429 => {
                assert!(
                    tried.headers().contains_key("retry-after"),
                    "a 429 says when to come back"
                );
                let body: serde_json::Value = tried.json().await.unwrap();
                assert_eq!(body["error"]["code"], "too_many_card_attempts");
                capped += 1;
            }
            other => panic!("attempt {i} answered {other}"),
        }
    }
    assert_eq!(
        declined, 10,
        "the patient's daily cap (five on one SetupIntent, ten a day)"
    );
    assert!(
        capped > 0 && setups_refused > 0,
        "capped {capped}, setups refused {setups_refused}"
    );
    let calls = mesh.ledger_counts("stripe", mark).await;
    let confirms: u64 = calls
        .iter()
        .filter(|(k, _)| k.ends_with("/confirm"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(confirms, 10, "Stripe saw no more confirmations than the cap: {calls:?}");

    // A payment method Stripe does not know is the caller's mistake (and still counts).
    let mut other = super::rx_queue::intake_body(&uuid::Uuid::new_v4().to_string(), "unknown.pm@example.test", "OH");
    // Another person (the same name and birth date under another email would be held for review).
    other["submission"]["demographics"]["givenName"] = json!("Rowan");
    let other: serde_json::Value = mesh
        .http
        .post(mesh.url("/api/intake/submit"))
        .json(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = other["intakeToken"].as_str().unwrap().to_owned();
    let setup: serde_json::Value = post("/api/intake/setup-intent", &token, None, json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unknown = post(
        "/api/intake/payment-method",
        &token,
        None,
        json!({ "setupIntentId": setup["setupIntentId"], "paymentMethodId": "pm_does_not_exist" }),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 400);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["field"], "paymentMethodId", "{body}");
}
