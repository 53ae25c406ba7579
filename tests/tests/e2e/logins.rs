//! Passwordless logins through the edge, with codes and links read from the sandbox's inbox: the
//! admin allowlist, one-time codes (single use, five wrong tries, ten parallel verifies), magic
//! links (opening does not use them up), patient codes, and the same answer for unknown emails.

use era_proto::{canvas::v1 as canvas, common::v1::Address};
use era_tests::{code_in, error_code, TestMesh};
use serde_json::{json, Value};

async fn post(mesh: &TestMesh, path: &str, bearer: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = mesh.http.post(mesh.url(path)).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req.send().await.unwrap()
}

fn fast() -> era_notifications::config::OutboxConfig {
    era_notifications::config::OutboxConfig {
        poll_ms: 50,
        ..Default::default()
    }
}

#[tokio::test]
async fn admins_sign_in_with_a_code_once_and_only_when_allowlisted() {
    let mesh = TestMesh::start_with(|o| o.notifications_outbox = fast()).await;
    let secret = mesh.admin_secret();
    let admin = "ops.lead@example.test";

    // Only ADMIN_SECRET manages the list.
    let session = mesh.admin_jwt("someone@example.test");
    let refused = post(
        &mesh,
        "/api/admin/admin-users",
        Some(&session),
        json!({ "email": admin }),
    )
    .await;
    assert_eq!(error_code(refused, 403).await, "forbidden");
    let added = post(
        &mesh,
        "/api/admin/admin-users",
        Some(&secret),
        json!({ "email": "Ops.Lead@Example.test " }),
    )
    .await;
    assert_eq!(added.status(), 201);
    let again = post(
        &mesh,
        "/api/admin/admin-users",
        Some(&secret),
        json!({ "email": admin }),
    )
    .await;
    assert_eq!(again.status(), 200);
    let listed: Value = mesh
        .get("/api/admin/admin-users", Some(&secret))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["email"], admin);

    // Known and unknown emails get the same answer; only the admin gets mail.
    let known = post(&mesh, "/api/auth/otp/send", None, json!({ "email": admin })).await;
    let unknown = post(
        &mesh,
        "/api/auth/otp/send",
        None,
        json!({ "email": "stranger@example.test" }),
    )
    .await;
    assert_eq!(
        (known.status(), unknown.status()),
        (reqwest::StatusCode::ACCEPTED, reqwest::StatusCode::ACCEPTED)
    );
    let (known, unknown): (Value, Value) = (known.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!(known, unknown);
    let code = code_in(&mesh.nth_mail(admin, 1).await);
    assert!(mesh.mail("stranger@example.test").await.is_empty());

    // A wrong code is refused; ten parallel tries of the right one make one session.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let bad = post(
        &mesh,
        "/api/auth/otp/verify",
        None,
        json!({ "email": admin, "code": wrong }),
    )
    .await;
    assert_eq!(error_code(bad, 401).await, "invalid_code");
    let tries = (0..10).map(|_| {
        post(
            &mesh,
            "/api/auth/otp/verify",
            None,
            json!({ "email": admin, "code": code }),
        )
    });
    let answers = futures::future::join_all(tries).await;
    let ok: Vec<&reqwest::Response> = answers.iter().filter(|r| r.status() == 200).collect();
    assert_eq!(
        ok.len(),
        1,
        "{:?}",
        answers.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    assert!(answers.iter().all(|r| r.status() == 200 || r.status() == 401));
    let body: Value = answers
        .into_iter()
        .find(|r| r.status() == 200)
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["subject"], admin);
    let token = body["token"].as_str().unwrap().to_owned();
    let routing = mesh.get("/api/admin/routing/GA", Some(&token)).await;
    assert_eq!(routing.status(), 200, "the session works on admin routes");
    let reused = post(
        &mesh,
        "/api/auth/otp/verify",
        None,
        json!({ "email": admin, "code": code }),
    )
    .await;
    assert_eq!(error_code(reused, 401).await, "invalid_code");

    // Five wrong tries use a code up: the right one no longer works.
    post(&mesh, "/api/auth/otp/send", None, json!({ "email": admin })).await;
    let code = code_in(&mesh.nth_mail(admin, 2).await);
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for _ in 0..5 {
        let r = post(
            &mesh,
            "/api/auth/otp/verify",
            None,
            json!({ "email": admin, "code": wrong }),
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let late = post(
        &mesh,
        "/api/auth/otp/verify",
        None,
        json!({ "email": admin, "code": code }),
    )
    .await;
    assert_eq!(error_code(late, 401).await, "invalid_code");

    // Removed from the list: a code sent before no longer signs in.
    post(&mesh, "/api/auth/otp/send", None, json!({ "email": admin })).await;
    let code = code_in(&mesh.nth_mail(admin, 3).await);
    let removed = mesh
        .http
        .delete(mesh.url(&format!("/api/admin/admin-users/{admin}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let after = post(
        &mesh,
        "/api/auth/otp/verify",
        None,
        json!({ "email": admin, "code": code }),
    )
    .await;
    assert_eq!(error_code(after, 401).await, "invalid_code");
    // ... and the session they already had ends at once.
    let ended = mesh.get("/api/admin/routing/GA", Some(&token)).await;
    assert_eq!(error_code(ended, 401).await, "token_revoked");

    // Sends are throttled per email, known or not: the sixth in 15 minutes is refused for both.
    for email in [admin, "stranger@example.test"] {
        let mut last = reqwest::StatusCode::OK;
        for _ in 0..5 {
            last = post(&mesh, "/api/auth/otp/send", None, json!({ "email": email }))
                .await
                .status();
        }
        assert_eq!(last, 429, "{email}");
    }
    // Bad input is named.
    let bad = post(&mesh, "/api/auth/otp/send", None, json!({ "email": "not an email" })).await;
    assert_eq!(error_code(bad, 400).await, "invalid_argument");
    let bad = post(
        &mesh,
        "/api/auth/otp/verify",
        None,
        json!({ "email": "a@b.co", "code": "12ab" }),
    )
    .await;
    assert_eq!(error_code(bad, 400).await, "invalid_argument");
}

#[tokio::test]
async fn a_magic_link_survives_being_opened_and_signs_in_once() {
    let mesh = TestMesh::start_with(|o| o.notifications_outbox = fast()).await;
    let admin = "night.shift@example.test";
    post(
        &mesh,
        "/api/admin/admin-users",
        Some(&mesh.admin_secret()),
        json!({ "email": admin }),
    )
    .await;
    let sent = post(&mesh, "/api/auth/magic-link", None, json!({ "email": admin })).await;
    assert_eq!(sent.status(), 202);
    let text = mesh.nth_mail(admin, 1).await;
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .expect("a link in the mail")
        .to_owned();
    assert!(link.starts_with(&mesh.url("/api/auth/magic-link?token=")), "{link}");
    let token = link.split("token=").nth(1).unwrap().to_owned();

    // A mail scanner (or the admin) opening the link twice uses nothing up.
    for _ in 0..2 {
        let page = mesh.http.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["cache-control"], "no-store");
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("value=\"{token}\"")) && html.contains("method=\"post\""));
    }
    // The token is exact: the same letters in another case are another token.
    let recased: String = token
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if recased != token {
        let wrong = post(&mesh, "/api/auth/magic-link/consume", None, json!({ "token": recased })).await;
        assert_eq!(error_code(wrong, 401).await, "invalid_link");
    }
    // The page's form post signs in, once: the browser is sent on to the admin portal with a
    // one-time handoff code in the fragment, never the token.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consume = || {
        browser
            .post(mesh.url("/api/auth/magic-link/consume"))
            .form(&[("token", token.as_str())])
            .send()
    };
    let first = consume().await.unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["cache-control"], "no-store");
    assert_eq!(first.headers()["referrer-policy"], "no-referrer");
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let portal = mesh.url("/docs#handoff=");
    assert!(location.starts_with(&portal), "{location}");
    let code = location[portal.len()..].to_owned();
    assert!(!location.contains("eyJ"), "no JWT in the URL: {location}");
    let exchange = || post(&mesh, "/api/auth/session", None, json!({ "code": code }));
    let session = exchange().await;
    assert_eq!(session.status(), 200);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["subject"], admin);
    assert_eq!(
        mesh.get("/api/admin/routing/GA", session["token"].as_str())
            .await
            .status(),
        200
    );
    assert_eq!(error_code(exchange().await, 401).await, "invalid_handoff");
    // Used: the form says so on a page, and the link itself says so before any click.
    let again = consume().await.unwrap();
    assert_eq!(again.status(), 401);
    assert!(again.text().await.unwrap().contains("can no longer be used"));
    let used = mesh.http.get(&link).send().await.unwrap();
    assert_eq!(used.status(), 410);
    let html = used.text().await.unwrap();
    assert!(html.contains("already used") && !html.contains("<form"), "{html}");

    // A second link, left to expire, says so; an API client's JSON post still gets the session.
    post(&mesh, "/api/auth/magic-link", None, json!({ "email": admin })).await;
    let second = mesh.nth_mail(admin, 2).await;
    let second = second
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .expect("a link in the mail")
        .to_owned();
    let second_token = second.split("token=").nth(1).unwrap().to_owned();
    mesh.notifications_sql(
        "update login_codes set expires_at = now() - interval '1 minute' \
         where purpose = 'magic_link' and consumed_at is null",
    )
    .await;
    let expired = mesh.http.get(&second).send().await.unwrap();
    assert_eq!(expired.status(), 410);
    assert!(expired.text().await.unwrap().contains("expired"));
    assert_eq!(
        mesh.http
            .get(mesh.url("/api/auth/magic-link?token=nonesuch"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    post(&mesh, "/api/auth/magic-link", None, json!({ "email": admin })).await;
    let third = mesh.nth_mail(admin, 3).await;
    let third_token = third
        .split("token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_ne!(third_token, second_token);
    let api = post(
        &mesh,
        "/api/auth/magic-link/consume",
        None,
        json!({ "token": third_token }),
    )
    .await;
    assert_eq!(api.status(), 200);
    let api: Value = api.json().await.unwrap();
    assert_eq!(api["subject"], admin);
    let forged = post(
        &mesh,
        "/api/auth/magic-link/consume",
        None,
        json!({ "token": "not-a-real-token" }),
    )
    .await;
    assert_eq!(error_code(forged, 401).await, "invalid_link");
    // Markup in the query never reaches the page.
    let page = mesh
        .http
        .get(mesh.url("/api/auth/magic-link?token=%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>"));
}

#[tokio::test]
async fn patients_sign_in_with_a_code_to_their_own_records() {
    let mesh = TestMesh::start_with(|o| o.notifications_outbox = fast()).await;
    let email = "portal.patient@example.test";
    let patient = mesh
        .canvas()
        .create_patient(mesh.admin_request(canvas::CreatePatientRequest {
            given_name: "Portal".into(),
            family_name: "Patient".into(),
            birth_date: "1975-05-05".into(),
            gender: canvas::Gender::Male as i32,
            birth_sex: canvas::BirthSex::Male as i32,
            email: email.into(),
            phone: "+15555550143".into(),
            address: Some(Address {
                lines: vec!["5 Portal Rd".into()],
                city: "Columbus".into(),
                state: "OH".into(),
                postal_code: "43004".into(),
                country: "US".into(),
            }),
            idempotency_key: "portal-patient".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .patient
        .unwrap()
        .id;
    let sent = post(&mesh, "/api/patient/auth/send-code", None, json!({ "email": email })).await;
    assert_eq!(sent.status(), 202);
    let nobody = post(
        &mesh,
        "/api/patient/auth/send-code",
        None,
        json!({ "email": "nobody@example.test" }),
    )
    .await;
    assert_eq!(nobody.status(), 202);
    let code = code_in(&mesh.nth_mail(email, 1).await);
    assert!(mesh.mail("nobody@example.test").await.is_empty());

    let verified = post(
        &mesh,
        "/api/patient/auth/verify",
        None,
        json!({ "email": email, "code": code }),
    )
    .await;
    assert_eq!(verified.status(), 200);
    let session: Value = verified.json().await.unwrap();
    assert_eq!(session["canvasPatientId"], patient.as_str());
    let token = session["token"].as_str().unwrap();
    let records = mesh.get(&format!("/api/patient-records/{patient}"), Some(token)).await;
    assert_eq!(records.status(), 200);
    let other = mesh.get("/api/patient-records/someone-else", Some(token)).await;
    assert_eq!(other.status(), 403);
    let admin_route = mesh.get("/api/admin/routing/GA", Some(token)).await;
    assert_eq!(admin_route.status(), 403);
    // Another person's chart naming the same email (a shared family address, a chart made in
    // Canvas): the sign-in stays with the chart whose code was entered.
    let other_chart = |given: &str, family: &str, email: &str, key: &str| canvas::CreatePatientRequest {
        given_name: given.into(),
        family_name: family.into(),
        birth_date: "1990-09-09".into(),
        gender: canvas::Gender::Female as i32,
        birth_sex: canvas::BirthSex::Female as i32,
        email: email.into(),
        phone: "+15555550144".into(),
        address: Some(Address {
            lines: vec!["6 Portal Rd".into()],
            city: "Columbus".into(),
            state: "OH".into(),
            postal_code: "43004".into(),
            country: "US".into(),
        }),
        idempotency_key: key.into(),
        ..Default::default()
    };
    mesh.canvas()
        .create_patient(mesh.admin_request(other_chart("Other", "Person", email, "portal-other")))
        .await
        .unwrap();
    let shared = post(&mesh, "/api/patient/auth/send-code", None, json!({ "email": email })).await;
    assert_eq!(shared.status(), 202);
    let code = code_in(&mesh.nth_mail(email, 2).await);
    let again = post(
        &mesh,
        "/api/patient/auth/verify",
        None,
        json!({ "email": email, "code": code }),
    )
    .await;
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["canvasPatientId"],
        patient.as_str(),
        "the proven chart keeps the sign-in"
    );

    // Two people's charts share an email neither has signed in with: no code goes out rather than
    // one that could open the wrong chart.
    let family = "family.shared@example.test";
    for (given, key) in [("Ada", "portal-ada"), ("Bea", "portal-bea")] {
        mesh.canvas()
            .create_patient(mesh.admin_request(other_chart(given, "Shared", family, key)))
            .await
            .unwrap();
    }
    // The send runs after the answer: a code row nobody can use marks it done with no one to send to.
    let db = sqlx::PgPool::connect(&mesh.database_url("notifications"))
        .await
        .unwrap();
    let unusable = || {
        sqlx::query_scalar::<_, i64>("select count(*) from login_codes where secret_hash like 'unusable:%'")
            .fetch_one(&db)
    };
    let before = unusable().await.unwrap();
    let none = post(&mesh, "/api/patient/auth/send-code", None, json!({ "email": family })).await;
    assert_eq!(none.status(), 202);
    let mut done = false;
    for _ in 0..100 {
        if unusable().await.unwrap() > before {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(done, "the send was decided");
    assert!(mesh.mail(family).await.is_empty(), "no code to a shared email");
    // A code for an email with no patient never verifies.
    let guess = post(
        &mesh,
        "/api/patient/auth/verify",
        None,
        json!({ "email": "nobody@example.test", "code": "123456" }),
    )
    .await;
    assert_eq!(error_code(guess, 401).await, "invalid_code");
}
