//! One chart per person, through the edge: a second intake from the same person joins their chart;
//! an intake naming someone else's email is held for review instead of making a chart, and can take
//! neither their sign-in nor their chart; a person decides the review once.

use era_tests::{code_in, error_code, TestMesh};
use serde_json::{json, Value};

use crate::rx_queue::{intake_body, json_ok};

async fn submit(mesh: &TestMesh, body: &Value) -> reqwest::Response {
    mesh.http
        .post(mesh.url("/api/intake/submit"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Signs a patient in by code, reading the code from the sandbox's inbox; answers the chart the
/// session is for.
async fn sign_in(mesh: &TestMesh, email: &str, nth: usize) -> String {
    let sent = mesh
        .http
        .post(mesh.url("/api/patient/auth/send-code"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let code = code_in(&mesh.nth_mail(email, nth).await);
    let verified = json_ok(
        mesh.http
            .post(mesh.url("/api/patient/auth/verify"))
            .json(&json!({ "email": email, "code": code }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    verified["canvasPatientId"].as_str().expect("a chart").to_owned()
}

#[tokio::test]
async fn a_second_intake_from_the_same_person_joins_their_chart() {
    let mesh = TestMesh::start().await;
    let mark = mesh.ledger_mark().await;
    let first = json_ok(
        submit(
            &mesh,
            &intake_body(&uuid::Uuid::new_v4().to_string(), "marigold.one@example.test", "OH"),
        )
        .await,
    )
    .await;
    // The same person months later, typing their name and email differently.
    let mut again = intake_body(&uuid::Uuid::new_v4().to_string(), " Marigold.One@Example.test", "OH");
    again["submission"]["demographics"]["givenName"] = json!("MARIGOLD");
    again["submission"]["demographics"]["familyName"] = json!("quillfeather ");
    let second = submit(&mesh, &again).await;
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["canvasPatientId"], first["canvasPatientId"], "one chart");
    assert_ne!(
        second["taskId"], first["taskId"],
        "the new intake gets its own review task"
    );
    assert_ne!(second["recordId"], first["recordId"]);
    let calls = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(calls.get("POST /canvas-fhir/Patient"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("POST /canvas-fhir/Task"), Some(&2), "{calls:?}");
}

#[tokio::test]
async fn an_intake_naming_someone_elses_email_is_held_and_takes_nothing_over() {
    let mesh = TestMesh::start().await;
    let email = "victim.v@example.test";
    let victim = json_ok(submit(&mesh, &intake_body(&uuid::Uuid::new_v4().to_string(), email, "OH")).await).await;
    let victim_chart = victim["canvasPatientId"].as_str().unwrap().to_owned();
    assert_eq!(sign_in(&mesh, email, 1).await, victim_chart);

    // Someone else submits an intake with the victim's email.
    let mark = mesh.ledger_mark().await;
    let mut forged = intake_body(&uuid::Uuid::new_v4().to_string(), email, "OH");
    forged["submission"]["demographics"]["givenName"] = json!("Mallory");
    forged["submission"]["demographics"]["familyName"] = json!("Ashgrove");
    forged["submission"]["demographics"]["birthDate"] = json!("1990-04-04");
    for _ in 0..2 {
        let held = submit(&mesh, &forged).await;
        assert_eq!(held.status(), 202);
        let held: Value = held.json().await.unwrap();
        assert_eq!(held["pendingReview"], true);
        assert!(
            held.get("intakeToken").is_none(),
            "no token: no chart to save a card for"
        );
    }
    let calls = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(calls.get("POST /canvas-fhir/Patient"), None, "no chart: {calls:?}");
    assert_eq!(calls.get("POST /canvas-fhir/Task"), None, "no review work: {calls:?}");

    // The victim still signs in to their own chart.
    assert_eq!(sign_in(&mesh, email, 2).await, victim_chart);

    // An admin sees the held intake and decides it once: a different person, a new chart.
    let secret = mesh.admin_secret();
    let reviews = json_ok(mesh.get("/api/admin/identity-reviews", Some(&secret)).await).await;
    let items = reviews["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{reviews}");
    let review = &items[0];
    assert_eq!(review["reason"], "email_belongs_to_another_chart");
    assert_eq!(review["candidatePatientIds"], json!([victim_chart]));
    assert_eq!(review["demographics"]["givenName"], "Mallory");
    let patient = mesh.patient_tokens().issue(&victim_chart).token;
    assert_eq!(
        mesh.get("/api/admin/identity-reviews", Some(&patient)).await.status(),
        403
    );

    let id = review["id"].as_str().unwrap();
    let resolve = |body: Value| {
        mesh.http
            .post(mesh.url(&format!("/api/admin/identity-reviews/{id}/resolve")))
            .bearer_auth(&secret)
            .json(&body)
            .send()
    };
    assert_eq!(resolve(json!({})).await.unwrap().status(), 400);
    let decided = json_ok(resolve(json!({ "createNewPatient": true })).await.unwrap()).await;
    let new_chart = decided["canvasPatientId"].as_str().unwrap().to_owned();
    assert_ne!(new_chart, victim_chart);
    assert!(!decided["taskId"].as_str().unwrap().is_empty());
    assert_eq!(decided["review"]["canvasPatientId"], new_chart.as_str());
    assert_eq!(
        error_code(resolve(json!({ "createNewPatient": true })).await.unwrap(), 422).await,
        "review_resolved"
    );
    // The same submission now answers with its completed result.
    let replay = submit(&mesh, &forged).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["canvasPatientId"], new_chart.as_str());

    // Two people's charts share the email now; the one whose code was entered keeps the sign-in.
    assert_eq!(sign_in(&mesh, email, 3).await, victim_chart);
    let open = json_ok(mesh.get("/api/admin/identity-reviews", Some(&secret)).await).await;
    assert!(open["items"].as_array().unwrap().is_empty());
}
