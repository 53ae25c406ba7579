//! The canvas service against the Canvas sandbox over real HTTP: the Rx queue's request budget, the
//! H&P package, idempotent intake, immutable encrypted records, and Canvas misbehaving (expired
//! tokens, 429, 500, lost answers, outages).

use era_proto::{
    canvas::v1::{self as pb},
    common::v1::{Address, PageRequest},
};
use era_sandbox::canvas::seed;
use era_tests::TestMesh;
use serde_json::{json, Value};
use tonic::Code;

fn demographics(tag: &str, state: &str) -> pb::IntakeDemographics {
    pb::IntakeDemographics {
        given_name: format!("Canary{tag}"),
        family_name: format!("Patientson{tag}"),
        preferred_name: String::new(),
        birth_date: "1984-03-09".into(),
        gender: pb::Gender::Female as i32,
        birth_sex: pb::BirthSex::Female as i32,
        email: format!("canary.{tag}@example.test"),
        phone: "+15555550123".into(),
        address: Some(Address {
            lines: vec!["12 Canary Row".into()],
            city: "Atlanta".into(),
            state: state.into(),
            postal_code: "30301".into(),
            country: "US".into(),
        }),
    }
}

fn submission(tag: &str, state: &str) -> pb::SubmitIntakeRequest {
    pb::SubmitIntakeRequest {
        submission_id: uuid::Uuid::new_v4().to_string(),
        submission: Some(pb::IntakeSubmission {
            demographics: Some(demographics(tag, state)),
            medication: "semaglutide".into(),
            questionnaire_id: String::new(),
            answers: vec![
                pb::QuestionnaireAnswer {
                    link_id: "medication".into(),
                    question: "Which medication are you requesting?".into(),
                    answers: vec!["semaglutide".into()],
                },
                pb::QuestionnaireAnswer {
                    link_id: "weight_lb".into(),
                    question: "Weight (lb)".into(),
                    answers: vec!["212".into()],
                },
            ],
            metadata: [("plan".to_owned(), "monthly".to_owned())].into(),
        }),
        raw_json: r#"{"source":"test"}"#.into(),
        submitted_at: None,
    }
}

/// Calls to Canvas (token and FHIR) since `mark`.
async fn canvas_calls(mesh: &TestMesh, mark: u64) -> (u64, std::collections::BTreeMap<String, u64>) {
    let mut all = mesh.ledger_counts("canvas-fhir", mark).await;
    all.extend(mesh.ledger_counts("canvas", mark).await);
    (all.values().sum(), all)
}

/// A token for writing to the sandbox directly, as a test fixture would.
async fn sandbox_token(mesh: &TestMesh) -> String {
    let s = &mesh.mesh.secrets;
    let resp: Value = mesh
        .sandbox
        .post(mesh.sandbox_url("/canvas/auth/token/"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s.canvas_client_id.as_str()),
            (
                "client_secret",
                secrecy::ExposeSecret::expose_secret(&s.canvas_client_secret),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_queue_page_of_fifty_costs_at_most_five_canvas_requests() {
    let mesh = TestMesh::start().await;
    // The seed has fewer than fifty open reviews: add some for seeded patients so the page is full.
    let token = sandbox_token(&mesh).await;
    let seeded = mesh
        .canvas()
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest {
            page: Some(PageRequest {
                page_size: 100,
                page_token: String::new(),
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(seeded.tasks.len() >= 20, "the demo clinic has at least 20 open reviews");
    for (i, task) in seeded.tasks.iter().cycle().take(60 - seeded.tasks.len()).enumerate() {
        let resp = mesh
            .sandbox
            .post(mesh.sandbox_url("/canvas-fhir/Task"))
            .bearer_auth(&token)
            .json(&json!({
                "resourceType": "Task", "status": "requested", "intent": "unknown",
                "description": format!("Rx Review (extra {i})"),
                "for": { "reference": format!("Patient/{}", task.canvas_patient_id) },
                "requester": { "reference": format!("Practitioner/{}", seed::ALI_NOLAN_ID) },
                "owner": { "reference": format!("Practitioner/{}", seed::ALI_NOLAN_ID) },
                "input": [{ "type": { "text": "label" }, "valueString": "Rx Review" }],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }

    let mark = mesh.ledger_mark().await;
    let page = mesh
        .canvas()
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest {
            page: Some(PageRequest {
                page_size: 50,
                page_token: String::new(),
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.tasks.len(), 50);
    assert!(page.total_size >= 60);
    assert!(!page.page.unwrap().next_page_token.is_empty());
    for task in &page.tasks {
        let patient = task.patient.as_ref().expect("each task carries its patient");
        assert_eq!(patient.id, task.canvas_patient_id);
        assert!(!patient.family_name.is_empty() && !patient.birth_date.is_empty());
        assert!(
            ["semaglutide", "tirzepatide"].contains(&task.medication.as_str()),
            "{}",
            task.medication
        );
        assert!(!task.intake_summary.as_ref().unwrap().highlights.is_empty());
        assert!(task.labels.contains(&"Rx Review".to_owned()));
    }
    let (total, per_route) = canvas_calls(&mesh, mark).await;
    assert!(total <= 5, "a page of 50 cost {total} Canvas requests: {per_route:?}");
    assert_eq!(per_route.get("GET /canvas-fhir/Task"), Some(&1), "{per_route:?}");

    // The practitioner filter narrows the queue to that prescriber's tasks.
    let singh = mesh
        .canvas()
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest {
            practitioner_id: seed::NEELIMA_SINGH_ID.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!singh.tasks.is_empty());
    assert!(singh
        .tasks
        .iter()
        .all(|t| t.owner_practitioner_id == seed::NEELIMA_SINGH_ID));
}

#[tokio::test]
async fn a_task_opens_with_its_whole_hp_package() {
    let mesh = TestMesh::start().await;
    let mut canvas = mesh.canvas();
    let list = canvas
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let first = &list.tasks[0];
    let detail = canvas
        .get_rx_review_task(mesh.admin_request(pb::GetRxReviewTaskRequest {
            task_id: first.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.task.as_ref().unwrap().id, first.id);
    assert_eq!(detail.patient.as_ref().unwrap().id, first.canvas_patient_id);
    assert!(!detail.questionnaire_responses.is_empty());
    assert!(!detail.conditions.is_empty());
    assert!(
        detail.observations.iter().any(|o| o.code == "29463-7"),
        "body weight is among the vitals"
    );
    assert!(detail
        .assigned_practitioners
        .iter()
        .any(|p| p.id == first.owner_practitioner_id && p.npi.len() == 10));
    assert!(
        !detail.dosage_options.is_empty(),
        "dosage options come from pharmacy-routing"
    );
    assert!(detail.dosage_options.iter().all(|d| d.medication == first.medication));

    let missing = canvas
        .get_rx_review_task(mesh.admin_request(pb::GetRxReviewTaskRequest {
            task_id: "0".repeat(32),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = canvas
        .get_rx_review_task(mesh.admin_request(pb::GetRxReviewTaskRequest {
            task_id: "../Patient".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let practitioners = canvas
        .list_practitioners(mesh.admin_request(pb::ListPractitionersRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .practitioners;
    let npis: Vec<_> = practitioners.iter().map(|p| p.npi.as_str()).collect();
    assert!(npis.contains(&"1982609764") && npis.contains(&"1164633533"), "{npis:?}");
}

#[tokio::test]
async fn intake_twice_or_at_once_yields_one_patient_one_record_one_task() {
    let mesh = TestMesh::start().await;
    let req = submission("Once", "GA");
    let mark = mesh.ledger_mark().await;
    let first = mesh
        .canvas()
        .submit_intake(mesh.admin_request(req.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.existing);
    let again = mesh
        .canvas()
        .submit_intake(mesh.admin_request(req.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    assert_eq!(
        (&again.canvas_patient_id, &again.record_id, &again.task_id),
        (&first.canvas_patient_id, &first.record_id, &first.task_id)
    );

    // Ten at once with another submission id.
    let concurrent = submission("AtOnce", "CO");
    let calls = (0..10).map(|_| {
        let mut client = mesh.canvas();
        let req = mesh.admin_request(concurrent.clone());
        async move { client.submit_intake(req).await.map(|r| r.into_inner()) }
    });
    let results: Vec<_> = futures::future::join_all(calls).await;
    let ok: Vec<_> = results.into_iter().map(|r| r.expect("every call succeeds")).collect();
    assert!(ok
        .iter()
        .all(|r| r.task_id == ok[0].task_id && r.canvas_patient_id == ok[0].canvas_patient_id));
    assert_eq!(ok.iter().filter(|r| !r.existing).count(), 1);

    let (_, calls) = canvas_calls(&mesh, mark).await;
    assert_eq!(calls.get("POST /canvas-fhir/Patient"), Some(&2), "{calls:?}");
    assert_eq!(calls.get("POST /canvas-fhir/Task"), Some(&2), "{calls:?}");
    assert_eq!(
        calls.get("POST /canvas-fhir/QuestionnaireResponse"),
        Some(&2),
        "{calls:?}"
    );

    // A different submission under a used id is refused, and changes nothing.
    let mut changed = req.clone();
    changed.submission.as_mut().unwrap().medication = "tirzepatide".into();
    let err = mesh
        .canvas()
        .submit_intake(mesh.admin_request(changed))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        era_kit::error::reason_of(&err).as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED")
    );

    // The task is in the queue with the intake's medication, assigned by the state's prescriber.
    let queue = mesh
        .canvas()
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest {
            canvas_patient_id: first.canvas_patient_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.tasks.len(), 1);
    let task = &queue.tasks[0];
    assert_eq!(task.id, first.task_id);
    assert_eq!(task.medication, "semaglutide");
    assert_eq!(task.owner_practitioner_id, seed::ALI_NOLAN_ID, "GA is a GMP state");
    assert_eq!(task.intake_summary.as_ref().unwrap().record_id, first.record_id);

    // The record reads back whole; search finds the patient by email through the blind index too.
    let record = mesh
        .canvas()
        .get_intake_record(mesh.admin_request(pb::GetIntakeRecordRequest {
            id: first.record_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(
        record
            .submission
            .as_ref()
            .unwrap()
            .demographics
            .as_ref()
            .unwrap()
            .given_name,
        "CanaryOnce"
    );
    assert_eq!(record.raw_json, r#"{"source":"test"}"#);
    let by_email = mesh
        .canvas()
        .list_intake_records(mesh.admin_request(pb::ListIntakeRecordsRequest {
            email: "CANARY.once@example.test ".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_email.records.len(), 1);
    let found = mesh
        .canvas()
        .search_patients(mesh.admin_request(pb::SearchPatientsRequest {
            query: "canary.once@example.test".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(found.patients.iter().any(|p| p.id == first.canvas_patient_id));
}

#[tokio::test]
async fn intake_is_validated_and_excluded_states_are_refused_before_any_write() {
    let mesh = TestMesh::start().await;
    let mark = mesh.ledger_mark().await;
    let mut bad = submission("Bad", "GA");
    bad.submission_id = "not-a-uuid".into();
    {
        let d = bad.submission.as_mut().unwrap().demographics.as_mut().unwrap();
        d.birth_date = "2999-01-01".into();
        d.email = "nope".into();
        d.birth_sex = 0;
    }
    let err = mesh.canvas().submit_intake(mesh.admin_request(bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> = era_kit::error::violations_of(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    for f in [
        "submission_id",
        "submission.demographics.birth_date",
        "submission.demographics.email",
        "submission.demographics.birth_sex",
    ] {
        assert!(fields.contains(&f.to_owned()), "{f} in {fields:?}");
    }
    assert!(!err.message().contains("nope"), "values are not echoed");

    // Answers must fit the questionnaire: a question it does not have, a choice it does not offer,
    // a number that is not one.
    let mut odd = submission("Odd", "GA");
    odd.submission.as_mut().unwrap().answers.extend([
        pb::QuestionnaireAnswer {
            link_id: "shoe_size".into(),
            question: "Shoe size".into(),
            answers: vec!["9".into()],
        },
        pb::QuestionnaireAnswer {
            link_id: "height_in".into(),
            question: "Height".into(),
            answers: vec!["tall".into()],
        },
    ]);
    odd.submission.as_mut().unwrap().answers[0].answers = vec!["aspirin".into()];
    let err = mesh.canvas().submit_intake(mesh.admin_request(odd)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> = era_kit::error::violations_of(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "submission.answers[0].answers",
            "submission.answers[2].link_id",
            "submission.answers[3].answers"
        ]
    );

    let err = mesh
        .canvas()
        .submit_intake(mesh.admin_request(submission("Texas", "TX")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("STATE_EXCLUDED"));
    let (_, calls) = canvas_calls(&mesh, mark).await;
    assert!(
        calls.keys().all(|k| !k.starts_with("POST /canvas-fhir")),
        "nothing written: {calls:?}"
    );
}

#[tokio::test]
async fn intake_records_are_encrypted_and_the_database_refuses_to_change_them() {
    let mesh = TestMesh::start().await;
    let done = mesh
        .canvas()
        .submit_intake(mesh.admin_request(submission("Vault", "NY")))
        .await
        .unwrap()
        .into_inner();
    let db = mesh.mesh.databases.iter().find(|d| d.ends_with("_canvas")).unwrap();
    let pool = sqlx::PgPool::connect(&era_kit::testing::database_url(db))
        .await
        .unwrap();

    let ciphertext: Vec<u8> = sqlx::query_scalar("select ciphertext from intake_records where id = $1::uuid")
        .bind(&done.record_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&ciphertext).contains("CanaryVault"));

    // A read before anything goes wrong (it leaves a row in the PHI read trail, checked below).
    mesh.canvas()
        .get_intake_record(mesh.admin_request(pb::GetIntakeRecordRequest {
            id: done.record_id.clone(),
        }))
        .await
        .unwrap();

    for sql in [
        "update intake_records set canvas_patient_id = 'x'",
        "delete from intake_records",
        "truncate intake_records cascade",
    ] {
        assert!(sqlx::query(sql).execute(&pool).await.is_err(), "{sql} refused");
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("set local session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert!(
            sqlx::query(sql).execute(&mut *tx).await.is_err(),
            "{sql} refused under replica"
        );
        tx.rollback().await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("set local role era_canvas_service")
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{sql}"
        );
        tx.rollback().await.unwrap();
    }
    let owner: String = sqlx::query_scalar("select tableowner::text from pg_tables where tablename = 'intake_records'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(owner, "era_canvas_service");

    // Someone with the owner's rights flips a byte: reading it is a clear integrity error.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("alter table intake_records disable trigger intake_records_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update intake_records set ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) where id = $1::uuid")
        .bind(&done.record_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("alter table intake_records enable always trigger intake_records_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let err = mesh
        .canvas()
        .get_intake_record(mesh.admin_request(pb::GetIntakeRecordRequest {
            id: done.record_id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("RECORD_INTEGRITY"));
    // Lists skip the unreadable record rather than fail.
    let resp = mesh
        .get(
            &format!("/api/patient-records/{}", done.canvas_patient_id),
            Some(&mesh.admin_secret()),
        )
        .await;
    assert_eq!(resp.status(), 200, "a list skips the unreadable record");
    let own = mesh.patient_tokens().issue(&done.canvas_patient_id).token;
    let listed: Value = mesh
        .get(&format!("/api/patient-records/{}", done.canvas_patient_id), Some(&own))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);

    // Reads of PHI left their trail, naming who read which record; the trail is append-only too.
    let reads: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "select actor_subject, rpc, record_id::text from phi_reads where canvas_patient_id = $1 order by id",
    )
    .bind(&done.canvas_patient_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        reads.iter().any(|(who, rpc, record)| who == "admin-secret"
            && rpc == "GetIntakeRecord"
            && record.as_deref() == Some(done.record_id.as_str())),
        "{reads:?}"
    );
    assert!(sqlx::query("delete from phi_reads").execute(&pool).await.is_err());
    // The queue's reads are there too, each naming the patient.
    mesh.canvas()
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest {
            canvas_patient_id: done.canvas_patient_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    mesh.canvas()
        .get_rx_review_task(mesh.admin_request(pb::GetRxReviewTaskRequest {
            task_id: done.task_id.clone(),
        }))
        .await
        .unwrap();
    let rpcs: Vec<String> = sqlx::query_scalar("select rpc from phi_reads where canvas_patient_id = $1")
        .bind(&done.canvas_patient_id)
        .fetch_all(&pool)
        .await
        .unwrap();
    for rpc in ["GetIntakeRecord", "ListRxReviewTasks", "GetRxReviewTask"] {
        assert!(rpcs.iter().any(|r| r == rpc), "{rpc} in {rpcs:?}");
    }
    pool.close().await;
}

#[tokio::test]
async fn canvas_misbehaving_is_retried_where_safe_and_only_there() {
    let mesh = TestMesh::start().await;
    let list = || {
        let mut c = mesh.canvas();
        let req = mesh.admin_request(pb::ListRxReviewTasksRequest::default());
        async move { c.list_rx_review_tasks(req).await }
    };
    list().await.unwrap();

    // Token expired mid-run: twenty calls at once each get a 401, and one new token serves them all.
    let tokens_before: Value = mesh
        .sandbox
        .get(mesh.sandbox_url("/_sandbox/canvas/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mesh.sandbox_post("/_sandbox/canvas/expire-tokens").await.status(), 204);
    for result in futures::future::join_all((0..20).map(|_| list())).await {
        result.expect("a fresh token is fetched");
    }
    let tokens_after: Value = mesh
        .sandbox
        .get(mesh.sandbox_url("/_sandbox/canvas/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tokens_after["issued"].as_u64().unwrap(),
        tokens_before["issued"].as_u64().unwrap() + 1
    );

    // 429 then success; 500 then success: reads are retried.
    for status in [429, 500] {
        mesh.fault(json!({ "method": "GET", "path": "/canvas-fhir/Task", "times": 1, "action": { "kind": "status", "status": status } }))
            .await;
        let mark = mesh.ledger_mark().await;
        list().await.unwrap_or_else(|e| panic!("retried after {status}: {e:?}"));
        let calls = mesh.ledger_counts("canvas-fhir", mark).await;
        assert_eq!(calls.get("GET /canvas-fhir/Task"), Some(&2), "{status}: {calls:?}");
    }

    // A create that fails with 500 is not retried: the caller hears UNAVAILABLE and nothing doubled.
    mesh.fault(json!({ "method": "POST", "path": "/canvas-fhir/Patient", "times": 1, "action": { "kind": "status", "status": 500 } }))
        .await;
    let req = submission("Flaky", "OH");
    let mark = mesh.ledger_mark().await;
    let err = mesh
        .canvas()
        .submit_intake(mesh.admin_request(req.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("CANVAS_UNAVAILABLE"));
    assert_eq!(
        mesh.ledger_counts("canvas-fhir", mark)
            .await
            .get("POST /canvas-fhir/Patient"),
        Some(&1)
    );

    // Canvas creates the task but the answer is lost: the retry finds it instead of opening another.
    mesh.fault(
        json!({ "method": "POST", "path": "/canvas-fhir/Task", "times": 1, "action": { "kind": "drop_after" } }),
    )
    .await;
    assert!(mesh
        .canvas()
        .submit_intake(mesh.admin_request(req.clone()))
        .await
        .is_err());
    let done = mesh
        .canvas()
        .submit_intake(mesh.admin_request(req.clone()))
        .await
        .unwrap()
        .into_inner();
    let queue = mesh
        .canvas()
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest {
            canvas_patient_id: done.canvas_patient_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.tasks.len(), 1, "one task despite the lost answer");
    let calls = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(
        calls.get("POST /canvas-fhir/Patient"),
        Some(&2),
        "the failed attempt and the real one: {calls:?}"
    );
    assert_eq!(calls.get("POST /canvas-fhir/Task"), Some(&1), "{calls:?}");

    // Canvas writes the answers but the answer is lost: the retry finds them (same authored time,
    // though the client sent none) instead of writing them twice.
    mesh.fault(json!({ "method": "POST", "path": "/canvas-fhir/QuestionnaireResponse", "times": 1, "action": { "kind": "drop_after" } }))
        .await;
    let req = submission("Answers", "OH");
    let mark = mesh.ledger_mark().await;
    assert!(mesh
        .canvas()
        .submit_intake(mesh.admin_request(req.clone()))
        .await
        .is_err());
    let done = mesh
        .canvas()
        .submit_intake(mesh.admin_request(req))
        .await
        .unwrap()
        .into_inner();
    assert!(!done.task_id.is_empty());
    let calls = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(
        calls.get("POST /canvas-fhir/QuestionnaireResponse"),
        Some(&1),
        "{calls:?}"
    );

    // A task changed in Canvas between our read and our write: Canvas answers 412, the caller
    // learns to reload (ABORTED) and nothing is overwritten.
    let task_id = done.task_id.clone();
    mesh.fault(json!({ "method": "PUT", "path": format!("/canvas-fhir/Task/{task_id}"), "times": 1,
        "action": { "kind": "status", "status": 412, "body": { "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": "conflict", "details": { "text": "Resource updated since If-Unmodified-Since date" } }] } } }))
        .await;
    let err = mesh
        .canvas()
        .update_task_status(mesh.admin_request(pb::UpdateTaskStatusRequest {
            task_id: task_id.clone(),
            status: pb::TaskStatus::Cancelled as i32,
            note: String::new(),
            actor: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("CHANGED_SINCE_READ"));

    // Canvas down: every attempt fails, the caller gets UNAVAILABLE with the reason.
    mesh.fault(json!({ "path": "/canvas-fhir/", "times": 10, "action": { "kind": "status", "status": 503 } }))
        .await;
    let err = list().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(era_kit::error::reason_of(&err).as_deref(), Some("CANVAS_UNAVAILABLE"));
}

#[tokio::test]
async fn messages_schedules_slots_and_appointments() {
    let mesh = TestMesh::start().await;
    let mut canvas = mesh.canvas();
    // A seeded patient of Dr Singh's (their open task is owned by her).
    let tasks = canvas
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest {
            practitioner_id: seed::NEELIMA_SINGH_ID.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    let patient = tasks[0].canvas_patient_id.clone();
    let as_patient = era_kit::auth::Caller::patient(patient.clone());
    let message =
        |practitioner: &str, direction: pb::CommunicationDirection, key: &str| pb::CreateCommunicationRequest {
            canvas_patient_id: patient.clone(),
            practitioner_id: practitioner.into(),
            direction: direction as i32,
            body: "When should I take my next dose?".into(),
            idempotency_key: key.into(),
            actor: None,
        };
    let to_singh = message(
        seed::NEELIMA_SINGH_ID,
        pb::CommunicationDirection::PatientToPractitioner,
        "m-1",
    );
    let sent = canvas
        .create_communication(mesh.request_as(to_singh.clone(), &as_patient))
        .await
        .unwrap()
        .into_inner();
    assert!(!sent.existing);
    let again = canvas
        .create_communication(mesh.request_as(to_singh, &as_patient))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    assert_eq!(
        again.communication.as_ref().unwrap().id,
        sent.communication.as_ref().unwrap().id
    );
    // Not to a practitioner who does not care for them, and not in the practitioner's name.
    let err = canvas
        .create_communication(mesh.request_as(
            message(
                seed::CARE_TEAM_ID,
                pb::CommunicationDirection::PatientToPractitioner,
                "m-2",
            ),
            &as_patient,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = canvas
        .create_communication(mesh.request_as(
            message(
                seed::NEELIMA_SINGH_ID,
                pb::CommunicationDirection::PractitionerToPatient,
                "m-3",
            ),
            &as_patient,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let listed = canvas
        .list_communications(mesh.request_as(
            pb::ListCommunicationsRequest {
                canvas_patient_id: patient.clone(),
                ..Default::default()
            },
            &as_patient,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed
        .communications
        .iter()
        .any(|c| c.id == sent.communication.as_ref().unwrap().id
            && c.direction == pb::CommunicationDirection::PatientToPractitioner as i32));
    // Another patient's messages are not found.
    let err = canvas
        .list_communications(mesh.request_as(
            pb::ListCommunicationsRequest {
                canvas_patient_id: patient.clone(),
                ..Default::default()
            },
            &era_kit::auth::Caller::patient("someone-else"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Schedules, slots, booking once, double booking refused, cancelling.
    let schedules = canvas
        .list_schedules(mesh.admin_request(pb::ListSchedulesRequest {
            practitioner_id: seed::NEELIMA_SINGH_ID.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .schedules;
    assert_eq!(schedules.len(), 1);
    let schedule = &schedules[0];
    assert_eq!(schedule.location_id, "1");
    let start = chrono::Utc::now().date_naive() + chrono::Duration::days(14);
    let slots = canvas
        .list_slots(mesh.admin_request(pb::ListSlotsRequest {
            schedule_id: schedule.id.clone(),
            start_date: start.to_string(),
            end_date: (start + chrono::Duration::days(7)).to_string(),
            duration_minutes: 30,
            appointment_type: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .slots;
    assert!(!slots.is_empty());
    let slot = slots[0].clone();
    let book = |key: &str| pb::CreateAppointmentRequest {
        canvas_patient_id: patient.clone(),
        practitioner_id: seed::NEELIMA_SINGH_ID.into(),
        location_id: "1".into(),
        start_time: slot.start_time,
        end_time: slot.end_time,
        meeting_url: "https://zoom.example/j/123".into(),
        reason: "Follow-up".into(),
        idempotency_key: key.into(),
        ..Default::default()
    };
    let booked = canvas
        .create_appointment(mesh.admin_request(book("a-1")))
        .await
        .unwrap()
        .into_inner();
    let appointment = booked.appointment.unwrap();
    assert_eq!(appointment.status, pb::AppointmentStatus::Booked as i32);
    assert_eq!(appointment.meeting_url, "https://zoom.example/j/123");
    assert_eq!(appointment.start_time, slot.start_time);
    let again = canvas
        .create_appointment(mesh.admin_request(book("a-1")))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    let taken = canvas
        .create_appointment(mesh.admin_request(book("a-2")))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::FailedPrecondition);
    assert_eq!(era_kit::error::reason_of(&taken).as_deref(), Some("SLOT_UNAVAILABLE"));
    let after = canvas
        .list_slots(mesh.admin_request(pb::ListSlotsRequest {
            schedule_id: schedule.id.clone(),
            start_date: start.to_string(),
            end_date: (start + chrono::Duration::days(7)).to_string(),
            duration_minutes: 30,
            appointment_type: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .slots;
    assert!(
        !after.iter().any(|s| s.start_time == slot.start_time),
        "the booked slot is gone"
    );
    let cancelled = canvas
        .cancel_appointment(mesh.admin_request(pb::CancelAppointmentRequest {
            id: appointment.id.clone(),
            reason: "patient asked".into(),
            actor: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .appointment
        .unwrap();
    assert_eq!(cancelled.status, pb::AppointmentStatus::Cancelled as i32);
    let err = canvas
        .update_appointment(mesh.admin_request(pb::UpdateAppointmentRequest {
            id: appointment.id.clone(),
            status: pb::AppointmentStatus::Booked as i32,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        era_kit::error::reason_of(&err).as_deref(),
        Some("APPOINTMENT_CANCELLED")
    );
    // The patient reads their own appointment; another patient gets NOT_FOUND.
    canvas
        .get_appointment(mesh.request_as(
            pb::GetAppointmentRequest {
                id: appointment.id.clone(),
            },
            &as_patient,
        ))
        .await
        .unwrap();
    let err = canvas
        .get_appointment(mesh.request_as(
            pb::GetAppointmentRequest {
                id: appointment.id.clone(),
            },
            &era_kit::auth::Caller::patient("someone-else"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn task_status_notes_and_the_hp_note() {
    let mesh = TestMesh::start().await;
    let mut canvas = mesh.canvas();
    let task = canvas
        .list_rx_review_tasks(mesh.admin_request(pb::ListRxReviewTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks
        .remove(0);
    // A comment, once per key.
    let note = |key: &str| pb::AddTaskNoteRequest {
        task_id: task.id.clone(),
        text: "Reviewed labs".into(),
        practitioner_id: task.owner_practitioner_id.clone(),
        idempotency_key: key.into(),
        actor: None,
    };
    assert!(
        !canvas
            .add_task_note(mesh.admin_request(note("n-1")))
            .await
            .unwrap()
            .into_inner()
            .existing
    );
    assert!(
        canvas
            .add_task_note(mesh.admin_request(note("n-1")))
            .await
            .unwrap()
            .into_inner()
            .existing
    );
    let bad_key = canvas
        .add_task_note(mesh.admin_request(note("n 1,2")))
        .await
        .unwrap_err();
    assert_eq!(bad_key.code(), Code::InvalidArgument);

    // Completing it keeps its other fields (Canvas clears what a PUT leaves out) and adds the
    // comment once, even when the call is repeated.
    let update = pb::UpdateTaskStatusRequest {
        task_id: task.id.clone(),
        status: pb::TaskStatus::Completed as i32,
        note: "Approved 0.25 mg".into(),
        actor: None,
    };
    let done = canvas
        .update_task_status(mesh.admin_request(update.clone()))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let again = canvas
        .update_task_status(mesh.admin_request(update))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(done.status, pb::TaskStatus::Completed as i32);
    assert_eq!(done.owner_practitioner_id, task.owner_practitioner_id);
    assert_eq!(done.labels, task.labels);
    assert_eq!(done.description, task.description);
    let texts: Vec<_> = again.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts.iter().filter(|t| **t == "Reviewed labs").count(), 1, "{texts:?}");
    assert_eq!(
        texts.iter().filter(|t| **t == "Approved 0.25 mg").count(),
        1,
        "{texts:?}"
    );

    // The H&P note: a DocumentReference written once per key.
    let hp = |key: &str| pb::CreateHpNoteRequest {
        task_id: task.id.clone(),
        canvas_patient_id: task.canvas_patient_id.clone(),
        practitioner_id: task.owner_practitioner_id.clone(),
        title: String::new(),
        body: "Patient meets criteria for GLP-1 therapy.\nNo contraindications reported.".into(),
        medication: "semaglutide".into(),
        dose_label: "0.25 mg weekly".into(),
        idempotency_key: key.into(),
        actor: None,
    };
    let mark = mesh.ledger_mark().await;
    let first = canvas
        .create_hp_note(mesh.admin_request(hp("hp-1")))
        .await
        .unwrap()
        .into_inner();
    let second = canvas
        .create_hp_note(mesh.admin_request(hp("hp-1")))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.existing && second.existing);
    assert_eq!(first.note.as_ref().unwrap().id, second.note.as_ref().unwrap().id);
    assert_eq!(first.note.unwrap().title, "History & Physical");
    let calls = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(calls.get("POST /canvas-fhir/DocumentReference"), Some(&1), "{calls:?}");
    // Canvas holds a PDF.
    let token = sandbox_token(&mesh).await;
    let doc: Value = mesh
        .sandbox
        .get(mesh.sandbox_url(&format!("/canvas-fhir/DocumentReference/{}", second.note.unwrap().id)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = doc["content"][0]["attachment"]["data"].as_str().unwrap();
    let pdf = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(doc["type"]["coding"][0]["code"], "47039-3");
}

#[tokio::test]
async fn create_patient_once_per_key_and_find_by_birth_date() {
    let mesh = TestMesh::start().await;
    let mut canvas = mesh.canvas();
    let d = demographics("Direct", "VA");
    let req = |key: &str| pb::CreatePatientRequest {
        given_name: d.given_name.clone(),
        family_name: d.family_name.clone(),
        preferred_name: "Dee".into(),
        birth_date: "1966-06-16".into(),
        gender: d.gender,
        birth_sex: d.birth_sex,
        email: d.email.clone(),
        phone: d.phone.clone(),
        address: d.address.clone(),
        idempotency_key: key.into(),
        actor: None,
    };
    let mark = mesh.ledger_mark().await;
    let first = canvas
        .create_patient(mesh.admin_request(req("p-1")))
        .await
        .unwrap()
        .into_inner();
    let again = canvas
        .create_patient(mesh.admin_request(req("p-1")))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.existing && again.existing);
    let patient = first.patient.unwrap();
    assert_eq!(patient.id, again.patient.unwrap().id);
    assert_eq!(patient.email, d.email);
    assert_eq!(patient.preferred_name, "Dee");
    assert_eq!(patient.birth_sex, pb::BirthSex::Female as i32);
    assert!(!patient.mrn.is_empty(), "Canvas assigns an MRN");
    let calls = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(calls.get("POST /canvas-fhir/Patient"), Some(&1), "{calls:?}");

    // Missing required fields are named; nothing is written.
    let mut bad = req("p-2");
    bad.birth_sex = 0;
    bad.email = String::new();
    let err = canvas.create_patient(mesh.admin_request(bad)).await.unwrap_err();
    let fields: Vec<_> = era_kit::error::violations_of(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["birth_sex", "email"]);

    let found = canvas
        .search_patients(mesh.admin_request(pb::SearchPatientsRequest {
            birth_date: "1966-06-16".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(found.patients.iter().any(|p| p.id == patient.id));
    let err = canvas
        .search_patients(mesh.admin_request(pb::SearchPatientsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
