//! The Canvas simulator over real HTTP: OAuth, the FHIR wire format (201/200 with empty bodies,
//! OperationOutcome errors, relative paging links), Canvas's per-resource rules, the seeded clinic,
//! and the sandbox's reset, ledger and faults around it.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use era_sandbox::{
    canvas::seed::{self, ALI_NOLAN_ID, CARE_TEAM_ID, INTAKE_QUESTIONNAIRE_ID, NEELIMA_SINGH_ID},
    Sandbox, SandboxConfig,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Canvas {
    base: String,
    http: reqwest::Client,
    token: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Canvas {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(Sandbox::new(), listener, async {
        let _ = stopped.await;
    }));
    let mut canvas = Canvas {
        base,
        http: reqwest::Client::new(),
        token: String::new(),
        _stop: stop,
    };
    canvas.token = canvas.new_token().await;
    canvas
}

impl Canvas {
    async fn token_call(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn new_token(&self) -> String {
        let config = SandboxConfig::default();
        let (status, body) = self
            .token_call(
                "/canvas/auth/token/",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &config.canvas_client_id),
                    ("client_secret", &config.canvas_client_secret),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn fhir(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/canvas-fhir{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self.fhir(Method::GET, path).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    /// A search that must succeed.
    async fn search(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["resourceType"], "Bundle");
        body
    }

    async fn send(&self, method: Method, path: &str, body: &Value) -> reqwest::Response {
        self.fhir(method, path).json(body).send().await.unwrap()
    }

    /// A create that must succeed; returns the new id from `Location`.
    async fn create(&self, resource_type: &str, body: &Value) -> String {
        let resp = self.send(Method::POST, &format!("/{resource_type}"), body).await;
        let status = resp.status();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        assert_eq!(status, 201, "{resource_type}: {text}");
        assert_eq!(text, "", "a create answers with an empty body");
        let location = location.expect("Location header");
        let prefix = format!("{}/canvas-fhir/{resource_type}/", self.base);
        let rest = location.strip_prefix(&prefix).expect("Location under the FHIR base");
        let id = rest.strip_suffix("/_history/1").expect("Location names version 1");
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        id.to_owned()
    }

    /// A call that must fail with this status; returns the OperationOutcome issue.
    async fn fails(&self, resp: reqwest::Response, status: u16) -> Value {
        assert_eq!(resp.status(), status);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
        assert_eq!(body["issue"][0]["severity"], "error");
        body["issue"][0].clone()
    }

    async fn control(&self, method: Method, path: &str) -> reqwest::Response {
        self.http
            .request(method, format!("{}/_sandbox{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn link<'a>(bundle: &'a Value, relation: &str) -> Option<&'a str> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == relation)?["url"].as_str()
}

fn new_patient(family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "extension": [{ "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F" }],
        "name": [{ "use": "official", "family": family, "given": ["Ada"] }],
        "gender": "female",
        "birthDate": "1984-06-02",
        "telecom": [{ "system": "email", "value": format!("ada.{family}@example.test") }],
        "address": [{ "line": ["1 Test St"], "city": "Denver", "state": "CO", "postalCode": "80202", "country": "US" }],
    })
}

fn practitioner_ref(id: &str) -> Value {
    json!({ "reference": format!("Practitioner/{id}") })
}

fn patient_ref(id: &str) -> Value {
    json!({ "reference": format!("Patient/{id}") })
}

#[tokio::test]
async fn the_token_endpoint_issues_tokens_and_refuses_bad_clients() {
    let canvas = start().await;
    let config = SandboxConfig::default();
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", config.canvas_client_id.as_str()),
        ("client_secret", config.canvas_client_secret.as_str()),
    ];
    let (status, body) = canvas.token_call("/canvas/auth/token/", &good).await;
    assert_eq!(status, 200);
    assert!(body["access_token"].as_str().unwrap().len() >= 30);
    assert_eq!(body["expires_in"], 36000);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "system/*.*");

    // Without the trailing slash, and with a scope, which is echoed.
    let mut scoped = good.to_vec();
    scoped.push(("scope", "system/Patient.read"));
    let (status, body) = canvas.token_call("/canvas/auth/token", &scoped).await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "system/Patient.read");

    let wrong_secret = [good[0], good[1], ("client_secret", "nope")];
    let (status, body) = canvas.token_call("/canvas/auth/token/", &wrong_secret).await;
    assert_eq!((status.as_u16(), body), (401, json!({ "error": "invalid_client" })));
    let wrong_id = [good[0], ("client_id", "someone-else"), good[2]];
    assert_eq!(canvas.token_call("/canvas/auth/token/", &wrong_id).await.0, 401);

    let password = [("grant_type", "password"), good[1], good[2]];
    let (status, body) = canvas.token_call("/canvas/auth/token/", &password).await;
    assert_eq!(
        (status.as_u16(), body),
        (400, json!({ "error": "unsupported_grant_type" }))
    );

    let (status, body) = canvas.token_call("/canvas/auth/token/", &good[..2]).await;
    assert_eq!((status.as_u16(), body), (400, json!({ "error": "invalid_request" })));

    let issued: Value = canvas
        .control(Method::GET, "/canvas/tokens")
        .await
        .json()
        .await
        .unwrap();
    // One from start(), two successes here.
    assert_eq!(issued, json!({ "issued": 3 }));

    // The rest of the EMR host is not simulated.
    let other = canvas
        .http
        .get(format!("{}/canvas/core/api/notes/v1/Note", canvas.base))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(other.json::<Value>().await.unwrap()["error"]["type"], "not_simulated");
}

#[tokio::test]
async fn a_configured_client_is_the_only_one_accepted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Sandbox::with_config(SandboxConfig {
        canvas_client_id: "staging-client".into(),
        canvas_client_secret: "staging-secret".into(),
        ..Default::default()
    });
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(sandbox, listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let call = |id: &'static str, secret: &'static str| {
        http.post(format!("{base}/canvas/auth/token/"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
    };
    assert_eq!(call("staging-client", "staging-secret").await.unwrap().status(), 200);
    assert_eq!(
        call("era-sandbox-canvas-client", "era-sandbox-canvas-secret")
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn fhir_calls_need_a_live_bearer_token() {
    let mut canvas = start().await;
    let anonymous = canvas
        .http
        .get(format!("{}/canvas-fhir/Patient", canvas.base))
        .send()
        .await
        .unwrap();
    let issue = canvas.fails(anonymous, 401).await;
    assert_eq!(issue["code"], "unknown");
    assert_eq!(issue["details"]["text"], "Authentication failed");

    let forged = canvas
        .http
        .get(format!("{}/canvas-fhir/Patient", canvas.base))
        .bearer_auth("forged-token")
        .send()
        .await
        .unwrap();
    canvas.fails(forged, 401).await;

    let resp = canvas.fhir(Method::GET, "/Patient").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));

    // "Token expired mid-run": every issued token stops working until a new one is fetched.
    assert_eq!(
        canvas.control(Method::POST, "/canvas/expire-tokens").await.status(),
        204
    );
    let expired = canvas.fhir(Method::GET, "/Patient").send().await.unwrap();
    canvas.fails(expired, 401).await;
    canvas.token = canvas.new_token().await;
    assert_eq!(canvas.get("/Patient").await.0, 200);
}

#[tokio::test]
async fn a_created_patient_has_an_id_only_in_location_and_reads_back_with_server_fields() {
    let canvas = start().await;
    let id = canvas.create("Patient", &new_patient("Lovelace")).await;
    let (status, patient) = canvas.get(&format!("/Patient/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(patient["id"], id.as_str());
    assert_eq!(patient["meta"]["versionId"], "1");
    assert_eq!(patient["active"], true);
    let mrn = patient["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == "http://canvasmedical.com")
        .expect("an MRN");
    assert_eq!(mrn["type"]["coding"][0]["code"], "MR");
    assert!(mrn["value"].as_str().unwrap().len() == 9);
    assert!(patient["telecom"][0]["id"].is_string());
    assert!(patient["address"][0]["id"].is_string());

    let by_email = canvas.search("/Patient?email=ADA.LOVELACE@example.test").await;
    assert_eq!(ids(&by_email), vec![id.clone()]);
    let by_mrn = canvas
        .search(&format!(
            "/Patient?identifier=http://canvasmedical.com|{}",
            mrn["value"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&by_mrn), vec![id.clone()]);

    let (status, missing) = canvas.get("/Patient/0000").await;
    assert_eq!(status, 404);
    assert_eq!(missing["issue"][0]["code"], "not-found");
    assert_eq!(
        missing["issue"][0]["details"]["text"],
        "Unknown Patient resource '0000'"
    );
}

#[tokio::test]
async fn patient_validation_names_the_field() {
    let canvas = start().await;
    let mut no_birthsex = new_patient("Nobirthsex");
    no_birthsex.as_object_mut().unwrap().remove("extension");
    let issue = canvas
        .fails(canvas.send(Method::POST, "/Patient", &no_birthsex).await, 400)
        .await;
    assert_eq!(issue["code"], "invalid");
    assert!(
        issue["details"]["text"].as_str().unwrap().contains("us-core-birthsex"),
        "{issue}"
    );

    let mut no_birth_date = new_patient("Nodate");
    no_birth_date.as_object_mut().unwrap().remove("birthDate");
    let issue = canvas
        .fails(canvas.send(Method::POST, "/Patient", &no_birth_date).await, 400)
        .await;
    assert_eq!(issue["details"]["text"], "Patient.birthDate is required");

    let mut two_official = new_patient("Twice");
    two_official["name"] = json!([
        { "use": "official", "family": "A", "given": ["B"] },
        { "use": "official", "family": "C", "given": ["D"] },
    ]);
    canvas
        .fails(canvas.send(Method::POST, "/Patient", &two_official).await, 400)
        .await;

    let wrong_type = json!({ "resourceType": "Task" });
    canvas
        .fails(canvas.send(Method::POST, "/Patient", &wrong_type).await, 400)
        .await;
    let not_json = canvas
        .fhir(Method::POST, "/Patient")
        .body("{nope")
        .send()
        .await
        .unwrap();
    canvas.fails(not_json, 400).await;
}

#[tokio::test]
async fn a_task_put_replaces_fields_and_appends_notes() {
    let canvas = start().await;
    let patient = seed::patients()[0].id.clone();
    let id = canvas
        .create(
            "Task",
            &json!({
                "resourceType": "Task",
                "status": "requested",
                "intent": "unknown",
                "description": "Rx Review",
                "for": patient_ref(&patient),
                "requester": practitioner_ref(ALI_NOLAN_ID),
                "owner": practitioner_ref(ALI_NOLAN_ID),
                "restriction": { "period": { "end": "2030-01-02" } },
                "input": [{ "type": { "text": "label" }, "valueString": "Rx Review" }],
                "note": [{ "text": "first" }],
            }),
        )
        .await;
    let (_, created) = canvas.get(&format!("/Task/{id}")).await;
    assert!(created["note"][0]["time"].is_string(), "notes are stamped");
    assert!(created["lastModified"].is_string());
    let permalink = created["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "http://schemas.canvasmedical.com/fhir/extensions/task-permalink")
        .unwrap();
    assert!(permalink["valueString"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/canvas/tasks/{id}")));

    let resp = canvas
        .send(
            Method::PUT,
            &format!("/Task/{id}"),
            &json!({
                "resourceType": "Task",
                "id": id,
                "status": "requested",
                "intent": "unknown",
                "description": "Rx Review",
                "owner": practitioner_ref(NEELIMA_SINGH_ID),
                "note": [{ "text": "reassigned to Dr Singh" }],
            }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with(&format!("/Task/{id}/_history/2")));
    assert_eq!(resp.text().await.unwrap(), "");

    let (_, task) = canvas.get(&format!("/Task/{id}")).await;
    assert_eq!(task["meta"]["versionId"], "2");
    assert_eq!(task["owner"]["reference"], format!("Practitioner/{NEELIMA_SINGH_ID}"));
    let notes: Vec<&str> = task["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, vec!["first", "reassigned to Dr Singh"]);
    // Left out of the PUT: input and restriction are cleared; the patient and authoredOn kept.
    assert!(task.get("input").is_none() && task.get("restriction").is_none());
    assert_eq!(task["for"]["reference"], format!("Patient/{patient}"));
    assert_eq!(task["authoredOn"], created["authoredOn"]);

    // A conditional PUT: refused (412 conflict) when the task changed after the given second.
    let stale = canvas
        .fhir(Method::PUT, &format!("/Task/{id}"))
        .header("if-unmodified-since", "Mon, 01 Jan 2024 00:00:00 GMT")
        .json(
            &json!({ "resourceType": "Task", "id": id, "status": "completed", "intent": "unknown",
            "description": "Rx Review" }),
        )
        .send()
        .await
        .unwrap();
    let outcome = canvas.fails(stale, 412).await;
    assert_eq!(outcome["code"], "conflict");
    let fresh = canvas
        .fhir(Method::PUT, &format!("/Task/{id}"))
        .header("if-unmodified-since", "Fri, 31 Dec 2100 00:00:00 GMT")
        .json(
            &json!({ "resourceType": "Task", "id": id, "status": "requested", "intent": "unknown",
            "description": "Rx Review", "owner": practitioner_ref(NEELIMA_SINGH_ID) }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);

    let missing = canvas
        .send(
            Method::PUT,
            "/Task/0000",
            &json!({ "resourceType": "Task", "status": "completed" }),
        )
        .await;
    canvas.fails(missing, 404).await;
    let bad_intent = json!({ "resourceType": "Task", "status": "requested", "intent": "order", "description": "x",
        "requester": practitioner_ref(ALI_NOLAN_ID) });
    canvas
        .fails(canvas.send(Method::POST, "/Task", &bad_intent).await, 400)
        .await;
    let unknown_requester = json!({ "resourceType": "Task", "status": "requested", "intent": "unknown",
        "description": "x", "requester": practitioner_ref("0000") });
    canvas
        .fails(canvas.send(Method::POST, "/Task", &unknown_requester).await, 400)
        .await;
}

#[tokio::test]
async fn unsupported_operations_answer_405() {
    let canvas = start().await;
    let task = canvas.search("/Task?_count=1").await["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        (Method::PATCH, format!("/Task/{task}")),
        (Method::DELETE, format!("/Task/{task}")),
        (Method::POST, "/MedicationRequest".to_owned()),
        (Method::PUT, "/MedicationRequest/anything".to_owned()),
        (Method::PUT, "/Observation/anything".to_owned()),
        (Method::POST, "/Schedule".to_owned()),
    ] {
        let issue = canvas
            .fails(canvas.send(method.clone(), &path, &json!({})).await, 405)
            .await;
        assert_eq!(issue["code"], "not-supported", "{method} {path}");
        assert_eq!(issue["details"]["text"], "Operation is not supported");
    }
    let (status, body) = canvas.get("/Unicorn").await;
    assert_eq!((status.as_u16(), &body["issue"][0]["code"]), (404, &json!("not-found")));
}

#[tokio::test]
async fn searches_page_with_relative_links() {
    let canvas = start().await;
    let first = canvas.search("/Patient?gender=female&_count=5").await;
    let total = first["total"].as_u64().unwrap() as usize;
    assert!(total > 10);
    assert_eq!(ids(&first).len(), 5);
    assert_eq!(link(&first, "self"), Some("/Patient?gender=female&_count=5&_offset=0"));
    assert_eq!(link(&first, "next"), Some("/Patient?gender=female&_count=5&_offset=5"));
    let last_offset = (total - 1) / 5 * 5;
    assert_eq!(
        link(&first, "last"),
        Some(format!("/Patient?gender=female&_count=5&_offset={last_offset}").as_str())
    );

    // Following every `next` link (resolved against the FHIR base) visits each patient once.
    let mut seen = ids(&first);
    let mut page = first;
    while let Some(next) = link(&page, "next").map(str::to_owned) {
        page = canvas.search(&next).await;
        seen.extend(ids(&page));
    }
    assert!(link(&page, "next").is_none());
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (total, total));

    let default = canvas.search("/Observation").await;
    assert_eq!(ids(&default).len(), 10);
    let capped = canvas.search("/Observation?_count=500").await;
    assert_eq!(ids(&capped).len(), 100);
    assert!(link(&capped, "self").unwrap().contains("_count=100"));

    let empty = canvas.search("/Patient?family=Nobody-By-This-Name").await;
    assert_eq!(
        empty,
        json!({ "resourceType": "Bundle", "type": "searchset", "total": 0 })
    );

    let issue = canvas
        .fails(
            canvas.fhir(Method::GET, "/Patient?colour=red").send().await.unwrap(),
            400,
        )
        .await;
    assert_eq!(issue["details"]["text"], "Unknown search parameter 'colour'");
    canvas
        .fails(
            canvas.fhir(Method::GET, "/Patient?_count=lots").send().await.unwrap(),
            400,
        )
        .await;
    assert_eq!(canvas.get("/Patient?_format=json").await.0, 200);

    let sorted = canvas.search("/Patient?_sort=-birthdate&_count=3").await;
    let dates: Vec<&str> = sorted["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["birthDate"].as_str().unwrap())
        .collect();
    assert_eq!(dates[0], "2000-01-21");
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
}

#[tokio::test]
async fn comma_separated_values_are_or_and_repeated_params_are_and() {
    let canvas = start().await;
    let patients = seed::patients();
    let wanted: Vec<&str> = patients[..3].iter().map(|p| p.id.as_str()).collect();
    let by_id = canvas
        .search(&format!("/Patient?_id={}&_count=50", wanted.join(",")))
        .await;
    assert_eq!(by_id["total"], 3);

    let refs = format!("Patient/{},{}", wanted[0], wanted[1]);
    let tasks = canvas.search(&format!("/Task?patient={refs}&_count=50")).await;
    assert_eq!(tasks["total"], 2);
    for kind in [
        "QuestionnaireResponse",
        "Condition",
        "Observation",
        "Communication",
        "DocumentReference",
        "Appointment",
        "MedicationRequest",
    ] {
        let bundle = canvas.search(&format!("/{kind}?patient={refs}&_count=100")).await;
        let total = bundle["total"].as_u64().unwrap();
        let one = canvas
            .search(&format!("/{kind}?patient={}&_count=100", wanted[0]))
            .await["total"]
            .as_u64()
            .unwrap();
        let other = canvas
            .search(&format!("/{kind}?patient=Patient/{}&_count=100", wanted[1]))
            .await["total"]
            .as_u64()
            .unwrap();
        assert_eq!(total, one + other, "{kind}");
    }
    let qrs = canvas.search(&format!("/QuestionnaireResponse?patient={refs}")).await;
    assert_eq!(qrs["total"], 2);

    // _id works on every type, and an OR list mixes found and unknown ids.
    let task_ids = ids(&tasks);
    let by_task_id = canvas.search(&format!("/Task?_id={},nope", task_ids[0])).await;
    assert_eq!(ids(&by_task_id), vec![task_ids[0].clone()]);

    // Repeated date params narrow to a range.
    let in_range = canvas
        .search("/Patient?birthdate=ge1980-01-01&birthdate=lt1990-01-01&_count=100")
        .await;
    for e in in_range["entry"].as_array().unwrap() {
        let d = e["resource"]["birthDate"].as_str().unwrap();
        assert!(("1980-01-01".."1990-01-01").contains(&d), "{d}");
    }
    assert!(in_range["total"].as_u64().unwrap() > 5);
}

#[tokio::test]
async fn the_seed_has_an_rx_review_queue_per_prescriber() {
    let canvas = start().await;
    let queue = canvas
        .search("/Task?label=Rx%20Review&status=requested&_count=100")
        .await;
    let open = queue["total"].as_u64().unwrap();
    assert!(open >= 20, "{open}");
    for e in queue["entry"].as_array().unwrap() {
        let t = &e["resource"];
        assert_eq!(t["description"], "Rx Review");
        assert_eq!(t["owner"], t["requester"]);
        assert!(t["for"]["reference"].as_str().unwrap().starts_with("Patient/"));
    }
    let ali = canvas
        .search(&format!(
            "/Task?label=Rx%20Review&status=requested&owner=Practitioner/{ALI_NOLAN_ID}"
        ))
        .await;
    let neelima = canvas
        .search(&format!(
            "/Task?label=Rx%20Review&status=requested&owner={NEELIMA_SINGH_ID}"
        ))
        .await;
    assert!(ali["total"].as_u64().unwrap() > 0 && neelima["total"].as_u64().unwrap() > 0);
    assert_eq!(
        ali["total"].as_u64().unwrap() + neelima["total"].as_u64().unwrap(),
        open
    );

    let all_open = canvas.search("/Task?status=requested&_count=100").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(all_open, open + 1, "one open task has another label");
    let completed = canvas.search("/Task?label=Rx%20Review&status=completed").await;
    assert!(completed["total"].as_u64().unwrap() >= 2);

    // Every seeded patient has a full chart.
    let p = &seed::patients()[1];
    let intake = canvas.search(&format!("/QuestionnaireResponse?patient={}", p.id)).await;
    assert_eq!(intake["entry"][0]["resource"]["item"].as_array().unwrap().len(), 12);
    let vitals = canvas
        .search(&format!("/Observation?patient={}&category=vital-signs", p.id))
        .await;
    assert!(vitals["total"].as_u64().unwrap() >= 3);
    let weight = canvas
        .search(&format!("/Observation?patient={}&code=http://loinc.org|29463-7", p.id))
        .await;
    assert_eq!(weight["total"], 1);
    let conditions = canvas.search(&format!("/Condition?patient={}", p.id)).await;
    assert!(conditions["total"].as_u64().unwrap() >= 1);
    let active = canvas
        .search(&format!("/MedicationRequest?patient={}&status=active", p.id))
        .await;
    assert_eq!(
        active["entry"][0]["resource"]["requester"]["reference"],
        format!("Practitioner/{}", p.prescriber_id)
    );
}

#[tokio::test]
async fn practitioner_search_hides_non_schedulable_staff_and_finds_npis() {
    let canvas = start().await;
    let by_npi = canvas.search("/Practitioner?npi-number=1982609764").await;
    assert_eq!(ids(&by_npi), vec![ALI_NOLAN_ID.to_owned()]);
    let default = canvas.search("/Practitioner").await;
    assert_eq!(
        ids(&default),
        vec![ALI_NOLAN_ID.to_owned(), NEELIMA_SINGH_ID.to_owned()]
    );
    let everyone = canvas
        .search("/Practitioner?include-non-schedulable-practitioners=true")
        .await;
    assert!(ids(&everyone).contains(&CARE_TEAM_ID.to_owned()));
    let by_name = canvas.search("/Practitioner?name=SINGH").await;
    assert_eq!(ids(&by_name), vec![NEELIMA_SINGH_ID.to_owned()]);
    let by_email = canvas.search("/Practitioner?email=ali.nolan@era-demo.test").await;
    assert_eq!(ids(&by_email), vec![ALI_NOLAN_ID.to_owned()]);
    let inactive = canvas.search("/Practitioner?active=false").await;
    assert_eq!(inactive["total"], 0);

    let schedules = canvas.search("/Schedule").await;
    assert_eq!(
        ids(&schedules),
        vec![
            format!("Location.1-Staff.{ALI_NOLAN_ID}"),
            format!("Location.1-Staff.{NEELIMA_SINGH_ID}")
        ]
    );
    assert_eq!(
        schedules["entry"][0]["resource"]["comment"],
        "Schedule for Ali Nolan at Era Telehealth"
    );
}

#[tokio::test]
async fn questionnaire_responses_are_checked_against_the_questionnaire() {
    let canvas = start().await;
    let patient = seed::patients()[2].id.clone();
    let response = |items: Value| {
        json!({
            "resourceType": "QuestionnaireResponse",
            "questionnaire": format!("Questionnaire/{INTAKE_QUESTIONNAIRE_ID}"),
            "status": "completed",
            "subject": patient_ref(&patient),
            "item": items,
        })
    };
    let unknown_question = response(json!([{ "linkId": "shoe_size", "answer": [{ "valueInteger": 9 }] }]));
    let issue = canvas
        .fails(
            canvas
                .send(Method::POST, "/QuestionnaireResponse", &unknown_question)
                .await,
            422,
        )
        .await;
    assert_eq!(issue["code"], "business-rule");
    assert!(issue["details"]["text"].as_str().unwrap().contains("shoe_size"));

    let bad_option = response(json!([{ "linkId": "medication", "answer": [{ "valueString": "aspirin" }] }]));
    let issue = canvas
        .fails(
            canvas.send(Method::POST, "/QuestionnaireResponse", &bad_option).await,
            422,
        )
        .await;
    assert!(issue["details"]["text"].as_str().unwrap().contains("medication"));

    let bad_type = response(json!([{ "linkId": "allergies", "answer": [{ "valueAttachment": {} }] }]));
    canvas
        .fails(
            canvas.send(Method::POST, "/QuestionnaireResponse", &bad_type).await,
            422,
        )
        .await;

    let good = response(json!([
        { "linkId": "medication", "answer": [{ "valueCoding": { "code": "tirzepatide" } }] },
        { "linkId": "weight_lb", "answer": [{ "valueInteger": 231 }] },
        { "linkId": "allergies", "answer": [{ "valueString": "None" }] },
    ]));
    let id = canvas.create("QuestionnaireResponse", &good).await;
    let sorted = canvas
        .search(&format!("/QuestionnaireResponse?patient={patient}&_sort=-authored"))
        .await;
    assert_eq!(ids(&sorted)[0], id);

    // Updates may only mark a response entered in error.
    let mut update = good.clone();
    update["status"] = json!("amended");
    canvas
        .fails(
            canvas
                .send(Method::PUT, &format!("/QuestionnaireResponse/{id}"), &update)
                .await,
            400,
        )
        .await;
    update["status"] = json!("entered-in-error");
    assert_eq!(
        canvas
            .send(Method::PUT, &format!("/QuestionnaireResponse/{id}"), &update)
            .await
            .status(),
        200
    );

    let questionnaire = canvas.search("/Questionnaire?name=GLP-1").await;
    assert_eq!(ids(&questionnaire), vec![INTAKE_QUESTIONNAIRE_ID.to_owned()]);
}

/// A weekday well clear of the seeded appointments.
fn free_weekday() -> NaiveDate {
    let mut d = Utc::now().date_naive() + Duration::days(30);
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d += Duration::days(1);
    }
    d
}

/// The clinic's UTC offset on `day` as Canvas writes it in slot times: the location's zone is
/// America/New_York, so "-05:00" in winter and "-04:00" in summer. (`free_weekday` is a month
/// out, so which one a run sees depends on the date it runs.)
fn clinic_offset(day: NaiveDate) -> String {
    let noon = day.and_hms_opt(12, 0, 0).unwrap();
    New_York
        .from_local_datetime(&noon)
        .single()
        .unwrap()
        .format("%:z")
        .to_string()
}

/// A booking at local wall-clock times on `day`, written with that day's clinic offset.
fn appointment(day: NaiveDate, start: &str, end: &str, patient: &str) -> Value {
    let offset = clinic_offset(day);
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "start": format!("{day}T{start}:00{offset}"),
        "end": format!("{day}T{end}:00{offset}"),
        "contained": [{ "resourceType": "Endpoint", "id": "appointment-meeting-endpoint-0", "address": "https://meet.example/abc" }],
        "supportingInformation": [
            { "reference": "Location/1" },
            { "reference": "#appointment-meeting-endpoint-0", "type": "Endpoint" },
        ],
        "participant": [
            { "actor": practitioner_ref(ALI_NOLAN_ID), "status": "accepted" },
            { "actor": patient_ref(patient), "status": "accepted" },
        ],
    })
}

#[tokio::test]
async fn slots_leave_out_booked_time_and_double_booking_is_refused() {
    let canvas = start().await;
    let day = free_weekday();
    // Office hours follow America/New_York, so the slots' offset is that of `day` (it used to be
    // a fixed -05:00, which is wrong for any day in daylight-saving time).
    let offset = clinic_offset(day);
    let schedule = format!("Location.1-Staff.{ALI_NOLAN_ID}");
    let slots_query = format!(
        "/Slot?schedule=Schedule/{schedule}&start={day}&end={}",
        day + Duration::days(1)
    );
    let before = canvas.search(&slots_query).await;
    assert_eq!(before["total"], 24, "09:00-17:00 in 20-minute slots");
    let first = &before["entry"][0]["resource"];
    assert!(first.get("id").is_none());
    assert_eq!(first["status"], "free");
    assert_eq!(first["start"], format!("{day}T09:00:00{offset}"));
    assert_eq!(first["end"], format!("{day}T09:20:00{offset}"));
    assert_eq!(first["schedule"]["reference"], format!("Schedule/{schedule}"));

    let patient = seed::patients()[0].id.clone();
    let id = canvas
        .create("Appointment", &appointment(day, "10:00", "10:20", &patient))
        .await;
    let after = canvas.search(&slots_query).await;
    assert_eq!(after["total"], 23);
    let starts: Vec<&str> = after["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["start"].as_str().unwrap())
        .collect();
    assert!(!starts.contains(&format!("{day}T10:00:00{offset}").as_str()));
    assert!(starts.contains(&format!("{day}T10:20:00{offset}").as_str()));
    // Bare schedule ids and other durations work too; the other prescriber is unaffected.
    let hour_slots = canvas
        .search(&format!(
            "/Slot?schedule={schedule}&start={day}&end={}&duration=60",
            day + Duration::days(1)
        ))
        .await;
    assert_eq!(hour_slots["total"], 7);
    let other = canvas
        .search(&format!(
            "/Slot?schedule=Location.1-Staff.{NEELIMA_SINGH_ID}&start={day}&end={}",
            day + Duration::days(1)
        ))
        .await;
    assert_eq!(other["total"], 24);

    let overlapping = appointment(day, "10:10", "10:30", &patient);
    let issue = canvas
        .fails(canvas.send(Method::POST, "/Appointment", &overlapping).await, 422)
        .await;
    assert_eq!(issue["code"], "business-rule");
    assert_eq!(
        issue["details"]["text"],
        "This appointment time is no longer available."
    );

    let (_, booked) = canvas.get(&format!("/Appointment/{id}")).await;
    let endpoint = &booked["contained"][0];
    assert_eq!(
        (&endpoint["status"], &endpoint["connectionType"]["code"]),
        (&json!("active"), &json!("https"))
    );
    assert_eq!(endpoint["address"], "https://meet.example/abc");

    // Moving the booking onto another's time is refused; cancelling frees the slot for good.
    let second = canvas
        .create("Appointment", &appointment(day, "11:00", "11:20", &patient))
        .await;
    let onto_first = json!({ "resourceType": "Appointment", "start": format!("{day}T10:00:00{offset}"), "end": format!("{day}T10:20:00{offset}") });
    canvas
        .fails(
            canvas
                .send(Method::PUT, &format!("/Appointment/{second}"), &onto_first)
                .await,
            422,
        )
        .await;
    let cancel = json!({ "resourceType": "Appointment", "status": "cancelled" });
    assert_eq!(
        canvas
            .send(Method::PUT, &format!("/Appointment/{id}"), &cancel)
            .await
            .status(),
        200
    );
    assert_eq!(
        canvas.search(&slots_query).await["total"],
        23,
        "only the 11:00 booking remains"
    );
    let (_, cancelled) = canvas.get(&format!("/Appointment/{id}")).await;
    assert_eq!(cancelled["participant"], booked["participant"], "a PUT is partial");
    let revive = json!({ "resourceType": "Appointment", "status": "booked" });
    canvas
        .fails(
            canvas.send(Method::PUT, &format!("/Appointment/{id}"), &revive).await,
            422,
        )
        .await;

    let mut no_location = appointment(day, "13:00", "13:20", &patient);
    no_location["supportingInformation"] = json!([]);
    canvas
        .fails(canvas.send(Method::POST, "/Appointment", &no_location).await, 400)
        .await;
    let mut in_error = appointment(day, "13:00", "13:20", &patient);
    in_error["status"] = json!("entered-in-error");
    canvas
        .fails(canvas.send(Method::POST, "/Appointment", &in_error).await, 400)
        .await;

    let on_day = canvas
        .search(&format!(
            "/Appointment?practitioner={ALI_NOLAN_ID}&date=ge{day}&date=lt{}&status=booked",
            day + Duration::days(1)
        ))
        .await;
    assert_eq!(ids(&on_day), vec![second]);
    canvas
        .fails(canvas.fhir(Method::GET, "/Slot").send().await.unwrap(), 400)
        .await;
}

/// Each day's first and last free slot, as written: `(start of the first, end of the last)`.
fn office_day_bounds(bundle: &Value) -> BTreeMap<String, (String, String)> {
    let mut days: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in bundle["entry"].as_array().into_iter().flatten() {
        let (start, end) = (
            e["resource"]["start"].as_str().unwrap(),
            e["resource"]["end"].as_str().unwrap(),
        );
        days.entry(start[..10].to_owned())
            .or_insert_with(|| (start.to_owned(), end.to_owned()))
            .1 = end.to_owned();
    }
    days
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn slot_times_follow_new_york_daylight_saving_in_march() {
    let canvas = start().await;
    // US clocks spring forward on Sunday 2027-03-14: Friday is still -05:00, Monday is -04:00.
    let bundle = canvas
        .search(&format!(
            "/Slot?schedule=Schedule/Location.1-Staff.{NEELIMA_SINGH_ID}&start=2027-03-12&end=2027-03-16"
        ))
        .await;
    let days = office_day_bounds(&bundle);
    assert_eq!(
        days.keys().collect::<Vec<_>>(),
        ["2027-03-12", "2027-03-15"],
        "weekdays only"
    );
    let (friday, friday_close) = &days["2027-03-12"];
    let (monday, monday_close) = &days["2027-03-15"];
    assert_eq!(friday, "2027-03-12T09:00:00-05:00");
    assert_eq!(friday_close, "2027-03-12T17:00:00-05:00");
    assert_eq!(monday, "2027-03-15T09:00:00-04:00");
    assert_eq!(monday_close, "2027-03-15T17:00:00-04:00");
    // The same local opening hour is an hour earlier in UTC once daylight time starts.
    assert_eq!(utc(friday), utc("2027-03-12T14:00:00Z"));
    assert_eq!(utc(monday), utc("2027-03-15T13:00:00Z"));
}

#[tokio::test]
async fn slot_times_follow_new_york_daylight_saving_in_november() {
    let canvas = start().await;
    // US clocks fall back on Sunday 2027-11-07: Friday is still -04:00, Monday is -05:00.
    let bundle = canvas
        .search(&format!(
            "/Slot?schedule=Schedule/Location.1-Staff.{NEELIMA_SINGH_ID}&start=2027-11-05&end=2027-11-09"
        ))
        .await;
    let days = office_day_bounds(&bundle);
    assert_eq!(
        days.keys().collect::<Vec<_>>(),
        ["2027-11-05", "2027-11-08"],
        "weekdays only"
    );
    let (friday, friday_close) = &days["2027-11-05"];
    let (monday, monday_close) = &days["2027-11-08"];
    assert_eq!(friday, "2027-11-05T09:00:00-04:00");
    assert_eq!(friday_close, "2027-11-05T17:00:00-04:00");
    assert_eq!(monday, "2027-11-08T09:00:00-05:00");
    assert_eq!(monday_close, "2027-11-08T17:00:00-05:00");
    assert_eq!(utc(friday), utc("2027-11-05T13:00:00Z"));
    assert_eq!(utc(monday), utc("2027-11-08T14:00:00Z"));
}

#[tokio::test]
async fn the_seed_books_two_future_visits() {
    let canvas = start().await;
    let booked = canvas
        .search(&format!(
            "/Appointment?status=booked&date=gt{}",
            Utc::now().date_naive()
        ))
        .await;
    assert_eq!(booked["total"], 2);
}

fn document(extensions: Value, data: &str) -> Value {
    json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "type": { "coding": [{ "system": "http://loinc.org", "code": "47039-3" }] },
        "subject": patient_ref(&seed::patients()[3].id),
        "description": "History and physical note",
        "content": [{ "attachment": { "contentType": "application/pdf", "data": data } }],
        "extension": extensions,
    })
}

#[tokio::test]
async fn a_document_reference_needs_canvas_review_extensions() {
    let canvas = start().await;
    let clinical_date = json!({ "url": "http://schemas.canvasmedical.com/fhir/document-reference-clinical-date", "valueDate": "2026-03-01" });
    let reviewer = json!({ "url": "http://schemas.canvasmedical.com/fhir/document-reference-reviewer", "valueReference": practitioner_ref(ALI_NOLAN_ID) });
    let signature = json!({ "url": "http://schemas.canvasmedical.com/fhir/document-reference-requires-signature", "valueBoolean": true });
    let pdf = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK";

    let missing = document(json!([clinical_date, reviewer]), pdf);
    let issue = canvas
        .fails(canvas.send(Method::POST, "/DocumentReference", &missing).await, 400)
        .await;
    assert!(
        issue["details"]["text"]
            .as_str()
            .unwrap()
            .contains("document-reference-requires-signature"),
        "{issue}"
    );

    let bad_pdf = document(json!([clinical_date, reviewer, signature]), "not base64!");
    canvas
        .fails(canvas.send(Method::POST, "/DocumentReference", &bad_pdf).await, 400)
        .await;

    let id = canvas
        .create(
            "DocumentReference",
            &document(json!([clinical_date, reviewer, signature]), pdf),
        )
        .await;
    let found = canvas
        .search(&format!(
            "/DocumentReference?patient={}&type=47039-3",
            seed::patients()[3].id
        ))
        .await;
    assert_eq!(ids(&found), vec![id]);
}

#[tokio::test]
async fn communications_are_between_a_practitioner_and_a_patient() {
    let canvas = start().await;
    let [a, b] = [&seed::patients()[0].id, &seed::patients()[1].id];
    let message = |sender: Value, recipient: Value| {
        json!({ "resourceType": "Communication", "status": "in-progress", "sender": sender, "recipient": [recipient],
            "payload": [{ "contentString": "Your prescription was sent." }] })
    };
    let between_patients = message(patient_ref(a), patient_ref(b));
    canvas
        .fails(
            canvas.send(Method::POST, "/Communication", &between_patients).await,
            400,
        )
        .await;
    let id = canvas
        .create(
            "Communication",
            &message(practitioner_ref(ALI_NOLAN_ID), patient_ref(a)),
        )
        .await;
    let (_, sent) = canvas.get(&format!("/Communication/{id}")).await;
    assert_eq!(sent["status"], "completed");
    assert!(sent["sent"].is_string());
    let found = canvas
        .search(&format!("/Communication?recipient=Patient/{a}&sender={ALI_NOLAN_ID}"))
        .await;
    assert!(ids(&found).contains(&id));
}

#[tokio::test]
async fn conditions_can_only_be_marked_entered_in_error() {
    let canvas = start().await;
    let p = &seed::patients()[4];
    let condition = canvas
        .search(&format!("/Condition?patient={}&clinical-status=active", p.id))
        .await;
    let c = condition["entry"][0]["resource"].clone();
    let id = c["id"].as_str().unwrap();
    let mut resolved = c.clone();
    resolved["clinicalStatus"]["coding"][0]["code"] = json!("resolved");
    canvas
        .fails(
            canvas.send(Method::PUT, &format!("/Condition/{id}"), &resolved).await,
            400,
        )
        .await;
    let mut in_error = c.clone();
    in_error["verificationStatus"] = json!({ "coding": [{ "code": "entered-in-error" }] });
    assert_eq!(
        canvas
            .send(Method::PUT, &format!("/Condition/{id}"), &in_error)
            .await
            .status(),
        200
    );
    let found = canvas
        .search(&format!("/Condition?_id={id}&verification-status=entered-in-error"))
        .await;
    assert_eq!(found["total"], 1);
}

#[tokio::test]
async fn reset_restores_the_seed_and_revokes_tokens() {
    let mut canvas = start().await;
    let seeded = canvas.search("/Patient").await["total"].clone();
    let id = canvas.create("Patient", &new_patient("Ephemeral")).await;
    assert_ne!(canvas.search("/Patient").await["total"], seeded);

    assert_eq!(canvas.control(Method::POST, "/reset").await.status(), 204);
    assert_eq!(canvas.fhir(Method::GET, "/Patient").send().await.unwrap().status(), 401);
    let issued: Value = canvas
        .control(Method::GET, "/canvas/tokens")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(issued["issued"], 0);
    canvas.token = canvas.new_token().await;
    assert_eq!(canvas.search("/Patient").await["total"], seeded);
    assert_eq!(canvas.get(&format!("/Patient/{id}")).await.0, 404);
    // Same ids as before the reset.
    let (status, ali) = canvas.get(&format!("/Practitioner/{ALI_NOLAN_ID}")).await;
    assert_eq!((status.as_u16(), &ali["name"][0]["family"]), (200, &json!("Nolan")));
}

#[tokio::test]
async fn the_ledger_counts_fhir_calls_and_faults_fire() {
    let canvas = start().await;
    canvas.search("/Task?label=Rx%20Review").await;
    canvas.search("/Task?status=requested").await;
    canvas.get(&format!("/Practitioner/{ALI_NOLAN_ID}")).await;
    let counts: Value = canvas
        .control(Method::GET, "/ledger/counts?vendor=canvas-fhir")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        counts,
        json!({ "GET /canvas-fhir/Task": 2, format!("GET /canvas-fhir/Practitioner/{ALI_NOLAN_ID}"): 1 })
    );
    let tokens: Value = canvas
        .control(Method::GET, "/ledger/counts?vendor=canvas")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tokens, json!({ "POST /canvas/auth/token/": 1 }));

    let fault = json!({ "path": "/canvas-fhir/Patient", "action": { "kind": "status", "status": 503 } });
    let added = canvas
        .http
        .post(format!("{}/_sandbox/faults", canvas.base))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    assert_eq!(
        canvas
            .fhir(Method::GET, "/Patient?family=Thompson")
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(canvas.get("/Patient?family=Thompson").await.0, 200);
    let ledger: Value = canvas
        .control(Method::GET, "/ledger?vendor=canvas-fhir")
        .await
        .json()
        .await
        .unwrap();
    let patient_calls: Vec<(Value, Value)> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/canvas-fhir/Patient")
        .map(|e| (e["status"].clone(), e["fault"].clone()))
        .collect();
    assert_eq!(
        patient_calls,
        vec![(json!(503), json!("status 503")), (json!(200), Value::Null)]
    );
}

#[tokio::test]
async fn a_patient_put_replaces_contact_points_and_keeps_the_mrn() {
    let canvas = start().await;
    let id = canvas.create("Patient", &new_patient("Hopper")).await;
    let (_, before) = canvas.get(&format!("/Patient/{id}")).await;
    let mut body = new_patient("Hopper");
    body["id"] = json!(id);
    body["telecom"] = json!([{ "system": "phone", "value": "+15555550999" }]);
    body.as_object_mut().unwrap().remove("address");
    assert_eq!(
        canvas
            .send(Method::PUT, &format!("/Patient/{id}"), &body)
            .await
            .status(),
        200
    );
    let (_, after) = canvas.get(&format!("/Patient/{id}")).await;
    assert_eq!(after["identifier"], before["identifier"]);
    assert_eq!(after["telecom"].as_array().unwrap().len(), 1);
    assert!(after.get("address").is_none());
    assert_eq!(
        ids(&canvas.search("/Patient?phone=555-555-0999").await),
        vec![id.clone()]
    );

    // Create-required fields are required on update too, and the body must name the URL's id.
    let mut no_gender = body.clone();
    no_gender.as_object_mut().unwrap().remove("gender");
    canvas
        .fails(
            canvas.send(Method::PUT, &format!("/Patient/{id}"), &no_gender).await,
            400,
        )
        .await;
    body["id"] = json!("someone-else");
    canvas
        .fails(canvas.send(Method::PUT, &format!("/Patient/{id}"), &body).await, 400)
        .await;
}

#[tokio::test]
async fn chart_writes_follow_canvas_rules() {
    let canvas = start().await;
    let patient = seed::patients()[5].id.clone();
    let condition = json!({
        "resourceType": "Condition",
        "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] },
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis" }] }],
        "code": { "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10" }] },
        "subject": patient_ref(&patient),
    });
    canvas.create("Condition", &condition).await;
    let mut no_category = condition.clone();
    no_category.as_object_mut().unwrap().remove("category");
    let issue = canvas
        .fails(canvas.send(Method::POST, "/Condition", &no_category).await, 400)
        .await;
    assert!(issue["details"]["text"]
        .as_str()
        .unwrap()
        .starts_with("Condition.category"));

    let weight = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs" }] }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": "29463-7" }] },
        "subject": patient_ref(&patient),
        "effectiveDateTime": "2031-05-04T10:00:00-05:00",
        "valueQuantity": { "value": 210, "unit": "lb" },
    });
    let id = canvas.create("Observation", &weight).await;
    let mut preliminary = weight.clone();
    preliminary["status"] = json!("preliminary");
    canvas
        .fails(canvas.send(Method::POST, "/Observation", &preliminary).await, 400)
        .await;
    let in_2031 = canvas
        .search(&format!(
            "/Observation?patient={patient}&date=ge2031-01-01&date=lt2032-01-01"
        ))
        .await;
    assert_eq!(ids(&in_2031), vec![id]);
    canvas
        .fails(
            canvas
                .fhir(Method::GET, "/Observation?date=ge2031-99-01")
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;

    let practitioner = json!({
        "resourceType": "Practitioner",
        "name": [{ "family": "Okafor", "given": ["Chidi"] }],
        "identifier": [{ "system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893" }],
    });
    let id = canvas.create("Practitioner", &practitioner).await;
    assert_eq!(
        ids(&canvas.search("/Practitioner?npi-number=1234567893").await),
        vec![id.clone()]
    );
    let mut retired = practitioner.clone();
    retired["active"] = json!(false);
    assert_eq!(
        canvas
            .send(Method::PUT, &format!("/Practitioner/{id}"), &retired)
            .await
            .status(),
        200
    );
    assert_eq!(canvas.search("/Practitioner?npi-number=1234567893").await["total"], 0);
    assert_eq!(
        ids(&canvas.search("/Practitioner?npi-number=1234567893&active=false").await),
        vec![id]
    );
    let mut bad_npi = practitioner.clone();
    bad_npi["identifier"][0]["value"] = json!("12345");
    canvas
        .fails(canvas.send(Method::POST, "/Practitioner", &bad_npi).await, 400)
        .await;
}
