//! PHI never reaches the logs. The whole mesh runs in this process with every component's logs
//! captured (era crates at debug, the rest at info, JSON with span fields); a patient with unique
//! canary values goes through intake, search, the queue, records, an approval (card, note, pharmacy
//! order, sync log), a refill processed now, the Canvas plugin (a welcome, a prescription written in Canvas fulfilled and
//! stopped), a telehealth visit booked, moved and cancelled (with its join link), and failing Canvas
//! calls; then the captured logs are searched for every canary value.
//!
//! A test binary of its own, because it installs the process-wide log subscriber.

use std::sync::{Arc, Mutex};

use era_tests::TestMesh;
use serde_json::{json, Value};
use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct Canary {
    tag: String,
    given: String,
    family: String,
    email: String,
    birth_date: String,
    street: String,
    phone: String,
}

impl Canary {
    fn new() -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Self {
            tag: tag.to_owned(),
            given: format!("Givcanary{tag}"),
            family: format!("Famcanary{tag}"),
            email: format!("mail.{tag}@canary.example"),
            birth_date: "1953-08-27".into(),
            street: format!("{tag} Canary Lane"),
            phone: "+15555550999".into(),
        }
    }

    /// Every value, and the forms a leak could take: the unique tag alone, URL-encoded, without
    /// punctuation.
    fn values(&self) -> Vec<String> {
        let mut out = vec![
            self.tag.clone(),
            self.given.clone(),
            self.family.clone(),
            self.email.clone(),
            self.email.replace('@', "%40"),
            self.birth_date.clone(),
            self.birth_date.replace('-', ""),
            self.street.clone(),
            self.street.replace(' ', "%20"),
            self.street.replace(' ', "+"),
            self.phone.clone(),
            self.phone.trim_start_matches('+').to_owned(),
        ];
        out.iter_mut().for_each(|v| *v = v.to_lowercase());
        out
    }

    fn absent_from(&self, text: &str, what: &str) {
        let text = text.to_lowercase();
        for value in self.values() {
            assert!(
                !text.contains(&value),
                "a canary value ({} characters) appears in {what}",
                value.len()
            );
        }
    }

    fn body(&self, submission_id: &str, state: &str) -> Value {
        json!({
            "submissionId": submission_id,
            "submission": {
                "demographics": {
                    "givenName": self.given, "familyName": self.family, "birthDate": self.birth_date,
                    "gender": "male", "birthSex": "male", "email": self.email, "phone": self.phone,
                    "address": { "lines": [self.street], "city": "Tampa", "state": state, "postalCode": "33601" }
                },
                "medication": "semaglutide",
                "answers": [
                    { "linkId": "medication", "question": "Which medication?", "answers": ["semaglutide"] },
                    { "linkId": "allergies", "question": "Allergies?", "answers": [format!("allergic to {}", self.family)] }
                ]
            }
        })
    }
}

#[tokio::test]
async fn no_canary_phi_appears_in_any_log() {
    let capture = Capture::default();
    let filter = EnvFilter::new(
        "info,era_canvas=debug,era_edge=debug,era_kit=debug,era_sandbox=debug,era_pharmacy_routing=debug,era_dev=debug,era_notifications=debug,era_payments=debug,era_scheduling=debug",
    );
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter(filter)
        .with_writer(capture.clone())
        .init();

    let mesh = TestMesh::start().await;
    let canary = Canary::new();
    let secret = mesh.admin_secret();
    let post = |body: Value| mesh.http.post(mesh.url("/api/intake/submit")).json(&body).send();

    // Intake, twice.
    let submission_id = uuid::Uuid::new_v4().to_string();
    let done: Value = post(canary.body(&submission_id, "FL"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient_id = done["canvasPatientId"].as_str().expect("intake succeeded").to_owned();
    let task_id = done["taskId"].as_str().unwrap().to_owned();
    assert_eq!(post(canary.body(&submission_id, "FL")).await.unwrap().status(), 200);

    // Refusals that carry canary values in the request.
    let mut bad = canary.body(&uuid::Uuid::new_v4().to_string(), "FL");
    bad["submission"]["demographics"]["birthDate"] = json!(format!("{}x", canary.birth_date));
    bad["submission"]["demographics"]["email"] = json!(format!("{}@@", canary.email));
    let refused = post(bad).await.unwrap();
    assert_eq!(refused.status(), 400);
    canary.absent_from(&refused.text().await.unwrap(), "an error body");
    let mut wrong_type = canary.body(&uuid::Uuid::new_v4().to_string(), "FL");
    wrong_type["submission"]["demographics"]["givenName"] = json!([canary.given]);
    let refused = post(wrong_type).await.unwrap();
    assert_eq!(refused.status(), 400);
    canary.absent_from(&refused.text().await.unwrap(), "an error body");
    assert_eq!(
        post(canary.body(&uuid::Uuid::new_v4().to_string(), "TX"))
            .await
            .unwrap()
            .status(),
        422
    );
    // The same submission id with changed content.
    let mut changed = canary.body(&submission_id, "FL");
    changed["submission"]["medication"] = json!("tirzepatide");
    assert_eq!(post(changed).await.unwrap().status(), 422);

    // Searches and reads that carry or return the canary values.
    for q in [&canary.email, &canary.family, &canary.birth_date] {
        let resp = mesh.get(&format!("/api/admin/patients?q={q}"), Some(&secret)).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        mesh.get(&format!("/api/admin/patients/{patient_id}"), Some(&secret))
            .await
            .status(),
        200
    );
    assert_eq!(
        mesh.get(&format!("/api/rx-queue/tasks/{task_id}"), Some(&secret))
            .await
            .status(),
        200
    );
    assert_eq!(
        mesh.get(
            &format!("/api/rx-queue/tasks?canvasPatientId={patient_id}"),
            Some(&secret)
        )
        .await
        .status(),
        200
    );
    let own = mesh.patient_tokens().issue(&patient_id).token;
    assert_eq!(
        mesh.get(&format!("/api/patient-records/{patient_id}"), Some(&own))
            .await
            .status(),
        200
    );

    // The approval pipeline with the canary: their card, an approval whose note names them, the
    // order carrying their name, birth date and address to the pharmacy, the run and sync log read.
    {
        use era_proto::payments::v1 as pay;
        let mut payments = mesh.payments();
        let setup = payments
            .create_setup_intent(mesh.admin_request(pay::CreateSetupIntentRequest {
                canvas_patient_id: patient_id.clone(),
                email: canary.email.clone(),
                idempotency_key: "canary-setup".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        payments
            .save_payment_method(mesh.admin_request(pay::SavePaymentMethodRequest {
                canvas_patient_id: patient_id.clone(),
                setup_intent_id: setup.setup_intent_id,
                payment_method_id: "pm_card_visa".into(),
                idempotency_key: String::new(),
            }))
            .await
            .unwrap();
        let detail: Value = mesh
            .get(&format!("/api/rx-queue/tasks/{task_id}"), Some(&secret))
            .await
            .json()
            .await
            .unwrap();
        let dose = detail["dosageOptions"][0]["label"].as_str().unwrap().to_owned();
        let approved = mesh
            .http
            .post(mesh.url(&format!("/api/rx-queue/tasks/{task_id}/approve")))
            .bearer_auth(&secret)
            .json(&json!({ "doseLabel": dose, "note": format!("{} {} {} reviewed", canary.given, canary.family, canary.tag) }))
            .send()
            .await
            .unwrap();
        let text = approved.text().await.unwrap();
        assert!(text.contains("\"succeeded\""), "{text}");
        canary.absent_from(&text, "an approval's answer");
        let logs = mesh
            .get(&format!("/api/admin/sync-logs?patientId={patient_id}"), Some(&secret))
            .await
            .text()
            .await
            .unwrap();
        assert!(logs.contains("submit"), "{logs}");
        canary.absent_from(&logs, "the sync log");
    }

    // The canary's first refill, processed now by an admin: charged, ordered, announced.
    {
        let schedule: Value = mesh
            .get(&format!("/api/admin/refills/{patient_id}"), Some(&secret))
            .await
            .json()
            .await
            .unwrap();
        let refill = schedule["items"][0]["id"]
            .as_str()
            .expect("the fill scheduled refills")
            .to_owned();
        let now = mesh
            .http
            .post(mesh.url(&format!("/api/admin/refills/{refill}/process-now")))
            .bearer_auth(&secret)
            .header("idempotency-key", format!("canary-{}", canary.tag))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        canary.absent_from(&now, "a refill action's answer");
        let mut ordered = false;
        for _ in 0..300 {
            let page = mesh
                .get(&format!("/api/admin/refills/{patient_id}"), Some(&secret))
                .await
                .text()
                .await
                .unwrap();
            canary.absent_from(&page, "the refill schedule");
            if page.contains("\"ordered\"") {
                ordered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ordered, "the canary's refill was ordered");
    }

    // The Canvas plugin for the canary: their welcome (PATIENT_CREATED), a prescription written in
    // Canvas fulfilled from the plugin's event (order, charge, notice), then stopped (the order
    // cancelled, the charge listed for a refund).
    {
        let plugin = mesh
            .sandbox
            .put(mesh.sandbox_url("/_sandbox/canvas/webhook"))
            .json(&json!({ "url": mesh.url("/api/webhooks/canvas"), "paused": true }))
            .send()
            .await
            .unwrap();
        assert!(plugin.status().is_success());
        let welcome =
            json!({ "id": format!("evt-welcome-{}", canary.tag), "type": "PATIENT_CREATED", "patientId": patient_id })
                .to_string();
        let welcomed = mesh
            .post_signed(
                "/api/webhooks/canvas/patient-created",
                &era_tests::unix_now().to_string(),
                &welcome,
            )
            .await;
        assert_eq!(welcomed.status(), 200);
        let written: Value = mesh
            .sandbox
            .post(mesh.sandbox_url("/_sandbox/canvas/prescriptions"))
            .json(&json!({ "patientId": patient_id, "medication": "ondansetron", "doseLabel": "4 mg as needed" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let prescription = written["medicationRequestId"].as_str().unwrap().to_owned();
        let deliver = |event: &str| {
            mesh.sandbox
                .post(mesh.sandbox_url("/_sandbox/canvas/deliver"))
                .json(&json!({ "events": [event] }))
                .send()
        };
        assert!(deliver(written["eventId"].as_str().unwrap())
            .await
            .unwrap()
            .status()
            .is_success());
        let runs_of = || async {
            let page: Value = mesh
                .get(
                    &format!("/api/admin/orchestration-runs?medicationRequestId={prescription}"),
                    Some(&secret),
                )
                .await
                .json()
                .await
                .unwrap();
            page["items"].as_array().unwrap().clone()
        };
        let settled = |kind: &'static str| {
            let runs_of = &runs_of;
            async move {
                for _ in 0..300 {
                    let runs = runs_of().await;
                    if runs.iter().any(|r| r["kind"] == kind && r["status"] == "succeeded") {
                        return runs;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                panic!("no {kind} run succeeded");
            }
        };
        let runs = settled("prescription").await;
        canary.absent_from(&Value::Array(runs).to_string(), "a prescription run");
        let stopped: Value = mesh
            .sandbox
            .post(mesh.sandbox_url(&format!("/_sandbox/canvas/prescriptions/{prescription}/stop")))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(deliver(stopped["eventId"].as_str().unwrap())
            .await
            .unwrap()
            .status()
            .is_success());
        let runs = settled("prescription_stop").await;
        canary.absent_from(&Value::Array(runs).to_string(), "a stop run");
        let reviews = mesh
            .get("/api/admin/refund-reviews", Some(&secret))
            .await
            .text()
            .await
            .unwrap();
        assert!(reviews.contains(&prescription), "{reviews}");
        canary.absent_from(&reviews, "the refund reviews");
    }

    // A telehealth visit for the canary: availability, a booking (a Zoom meeting, the Canvas
    // appointment, a confirmation by email and SMS to their chart's address and number with the join
    // link), a move and a cancellation. The join link must not reach a log either.
    let join_url = {
        let avail: Value = mesh
            .get(
                &format!("/api/admin/availability?canvasPatientId={patient_id}"),
                Some(&secret),
            )
            .await
            .json()
            .await
            .unwrap();
        let (first, second) = (&avail["items"][0], &avail["items"][1]);
        let booked = mesh
            .http
            .post(mesh.url("/api/admin/appointments"))
            .bearer_auth(&secret)
            .json(&json!({ "canvasPatientId": patient_id, "practitionerId": first["practitionerId"], "startTime": first["startTime"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(booked.status(), 201);
        let booked: Value = booked.json().await.unwrap();
        let id = booked["appointment"]["id"].as_str().unwrap().to_owned();
        let join_url = booked["appointment"]["joinUrl"].as_str().unwrap().to_owned();
        assert!(join_url.starts_with("https://"), "{booked}");
        let moved = mesh
            .http
            .post(mesh.url(&format!("/api/admin/appointments/{id}/reschedule")))
            .bearer_auth(&secret)
            .json(&json!({ "startTime": second["startTime"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), 200);
        let cancelled = mesh
            .http
            .post(mesh.url(&format!("/api/admin/appointments/{id}/cancel")))
            .bearer_auth(&secret)
            .json(&json!({ "reason": format!("{} asked", canary.given) }))
            .send()
            .await
            .unwrap();
        assert_eq!(cancelled.status(), 200);
        join_url
    };

    // Notifications to the canary: an email, an SMS and a portal notification from the chart's
    // contact details, a refusal and a retry on the way; then a patient sign-in code by email.
    mesh.fault(json!({ "method": "POST", "path": "/sendgrid/v3/mail/send", "times": 1, "action": { "kind": "status", "status": 500 } }))
        .await;
    let mut notifications = mesh.notifications();
    let sent = notifications
        .send_notification(
            mesh.admin_request(era_proto::notifications::v1::SendNotificationRequest {
                notification_type: era_proto::notifications::v1::NotificationType::PrescriptionApproved as i32,
                canvas_patient_id: patient_id.clone(),
                variables: [("medication".to_owned(), format!("canarymed{}", canary.tag))].into(),
                reference: "canary-run".into(),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.messages.len(), 3);
    let bad = notifications
        .send_notification(
            mesh.admin_request(era_proto::notifications::v1::SendNotificationRequest {
                notification_type: era_proto::notifications::v1::NotificationType::ShipmentCreated as i32,
                recipient: Some(era_proto::notifications::v1::Recipient {
                    email: format!("{} {}", canary.given, canary.email),
                    phone: canary.phone.clone(),
                    name: canary.family.clone(),
                }),
                reference: "canary-bad".into(),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
    canary.absent_from(bad.message(), "a notification refusal");
    let code = mesh
        .http
        .post(mesh.url("/api/patient/auth/send-code"))
        .json(&json!({ "email": canary.email }))
        .send()
        .await
        .unwrap();
    assert_eq!(code.status(), 202);
    for _ in 0..100 {
        let m = notifications
            .get_outbox_message(
                mesh.admin_request(era_proto::notifications::v1::GetOutboxMessageRequest {
                    id: sent.messages[0].id.clone(),
                }),
            )
            .await
            .unwrap()
            .into_inner();
        if m.message.unwrap().status == era_proto::notifications::v1::MessageStatus::Sent as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Canvas refusing the answers with a text that quotes them: the intake goes on, the text is
    // logged nowhere.
    let quoted = format!("Answer '{}' of {} is not valid", canary.family, canary.email);
    mesh.fault(
        json!({ "method": "POST", "path": "/canvas-fhir/QuestionnaireResponse", "times": 1,
        "action": { "kind": "status", "status": 422, "body": {
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": "business-rule", "details": { "text": quoted } }] } } }),
    )
    .await;
    let refused_answers = post(canary.body(&uuid::Uuid::new_v4().to_string(), "FL"))
        .await
        .unwrap();
    assert_eq!(refused_answers.status(), 201);
    canary.absent_from(&refused_answers.text().await.unwrap(), "an answer body");

    // The canary's email in someone else's intake: held for an identity review, listed for an admin.
    let mut stranger = canary.body(&uuid::Uuid::new_v4().to_string(), "FL");
    stranger["submission"]["demographics"]["birthDate"] = json!("1961-06-06");
    let held = post(stranger).await.unwrap();
    assert_eq!(held.status(), 202);
    canary.absent_from(&held.text().await.unwrap(), "a held intake's answer");
    let reviews = mesh.get("/api/admin/identity-reviews", Some(&secret)).await;
    assert_eq!(reviews.status(), 200);

    // Canvas failing under a canary intake: a create refused with 500 (the task: the person's chart
    // exists, so the intake joins it), reads failing, an outage.
    mesh.fault(json!({ "method": "POST", "path": "/canvas-fhir/Task", "times": 1, "action": { "kind": "status", "status": 500 } }))
        .await;
    let other = canary.body(&uuid::Uuid::new_v4().to_string(), "FL");
    let unavailable = post(other).await.unwrap();
    assert_eq!(unavailable.status(), 503);
    canary.absent_from(&unavailable.text().await.unwrap(), "an error body");
    mesh.fault(json!({ "path": "/canvas-fhir/", "times": 20, "action": { "kind": "status", "status": 503 } }))
        .await;
    assert_eq!(
        mesh.get(&format!("/api/admin/patients?q={}", canary.email), Some(&secret))
            .await
            .status(),
        503
    );

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_lowercase();
    // The capture works: it holds the edge's request lines and canvas's Canvas calls.
    assert!(logs.contains("intake submitted"), "canvas's logs were captured");
    assert!(logs.contains("canvas is failing"), "the failures were logged");
    assert!(
        logs.contains("canvas refused the intake answers"),
        "the refused answers were logged"
    );
    assert!(logs.contains("\"target\":\"era_edge"), "the edge's logs were captured");
    assert!(logs.contains("message sent"), "the outbox's logs were captured");
    assert!(
        logs.contains("approval run recorded"),
        "the pipeline's logs were captured"
    );
    assert!(logs.contains("appointment recorded"), "scheduling's logs were captured");
    assert!(
        logs.contains("prescription run recorded") && logs.contains("stop run recorded"),
        "the plugin's runs were logged"
    );
    assert!(logs.contains("refill action"), "the refill's logs were captured");
    assert!(logs.contains("zoom call"), "the zoom client's logs were captured");
    let join_url = join_url.to_lowercase();
    let passcode = join_url.split("pwd=").nth(1).unwrap_or(&join_url);
    assert!(
        !logs.contains(&join_url) && !logs.contains(passcode),
        "the visit's join link appears in the logs"
    );
    canary.absent_from(&logs, "the logs");
}
