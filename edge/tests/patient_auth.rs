//! Patient routes: a patient JWT reads only its own patient; ADMIN_SECRET reads any; admin and
//! patient tokens never stand in for each other. Driven through a router with `oneshot`.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{Request, StatusCode},
    routing::get,
    Router,
};
use era_edge::{
    auth::{jwt::TokenKind, Patient},
    config::EdgeSecrets,
    error::ApiError,
    AppState, Config,
};
use era_kit::{testing::TestDb, ExposeSecret, SecretString};
use tower::ServiceExt;

mod common;

async fn own_record(
    State(_): State<AppState>,
    patient: Patient,
    Path(id): Path<String>,
) -> Result<&'static str, ApiError> {
    patient.require(&id)?;
    Ok("record")
}

struct Fixture {
    app: Router,
    state: AppState,
    config: Config,
    admin_secret: String,
    patient_tokens: TokenKind,
    admin_tokens: TokenKind,
    _db: TestDb,
}

async fn fixture() -> Fixture {
    let db = TestDb::new(&era_edge::MIGRATOR).await;
    let config = common::config(&db);
    let auth = config.auth.clone();
    let admin_jwt = SecretString::from(common::ADMIN_JWT_SECRET);
    let patient_jwt = SecretString::from(common::PATIENT_JWT_SECRET);
    config.validate().unwrap();
    let state = AppState::new(config.clone(), db.pool.clone()).await.unwrap();
    let app = Router::new()
        .route("/patients/{id}", get(own_record))
        .with_state(state.clone());
    Fixture {
        app,
        state,
        config,
        admin_secret: auth.admin_secret.expose_secret().to_owned(),
        patient_tokens: TokenKind::patient(&patient_jwt),
        admin_tokens: TokenKind::admin(&admin_jwt),
        _db: db,
    }
}

async fn status(app: &Router, path: &str, token: &str) -> StatusCode {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn a_patient_reads_only_their_own_records() {
    let f = fixture().await;
    let own = f.patient_tokens.issue("pat-1").token;
    assert_eq!(status(&f.app, "/patients/pat-1", &own).await, StatusCode::OK);
    assert_eq!(status(&f.app, "/patients/pat-2", &own).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&f.app, "/patients/pat-2", &f.admin_secret).await, StatusCode::OK);
    let admin_session = f.admin_tokens.issue("ops@clinic.example").token;
    assert_eq!(
        status(&f.app, "/patients/pat-1", &admin_session).await,
        StatusCode::FORBIDDEN
    );
    // A patient token's claims signed with the admin key are neither kind.
    let forged = f.admin_tokens.sign(&f.patient_tokens.issue("pat-1").claims);
    assert_eq!(
        status(&f.app, "/patients/pat-1", &forged).await,
        StatusCode::UNAUTHORIZED
    );
    let expired = {
        let mut c = f.patient_tokens.issue("pat-1").claims;
        c.iat -= 5 * 3600;
        c.exp -= 5 * 3600;
        f.patient_tokens.sign(&c)
    };
    assert_eq!(
        status(&f.app, "/patients/pat-1", &expired).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_logout_on_one_edge_replica_reaches_the_others() {
    let f = fixture().await;
    let other = AppState::new(f.config.clone(), f._db.pool.clone()).await.unwrap();
    let issued = f.admin_tokens.issue("ops@clinic.example");
    assert!(other.authenticate_admin(&issued.token).is_ok());
    let until = chrono::DateTime::from_timestamp(issued.claims.exp, 0).unwrap();
    f.state
        .revocations
        .revoke(&issued.claims.jti, &issued.claims.sub, until)
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..100 {
        if other.authenticate_admin(&issued.token).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the other replica never learned of the logout");
}

#[tokio::test]
async fn no_session_may_act_as_the_admin_secret() {
    let f = fixture().await;
    let token = f.admin_tokens.issue(era_kit::auth::ADMIN_SECRET_SUBJECT).token;
    assert_eq!(status(&f.app, "/patients/pat-1", &token).await, StatusCode::FORBIDDEN);
    assert!(f.state.authenticate_admin(&token).is_err());
}

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    let base = || EdgeSecrets {
        admin_jwt_secret: Some(SecretString::from("a".repeat(40))),
        canvas_auth_secret: Some(SecretString::from("b".repeat(40))),
        patient_jwt_secret: SecretString::from("p".repeat(40)),
        stripe_webhook_secret: None,
        ops_token: None,
        pharmacy_webhooks: Default::default(),
    };
    assert_eq!(base().admin_jwt().unwrap_err().var, "CANVAS_AUTH_SECRET");
    let none = EdgeSecrets {
        admin_jwt_secret: None,
        canvas_auth_secret: None,
        ..base()
    };
    assert_eq!(none.admin_jwt().unwrap_err().var, "ADMIN_JWT_SECRET");
    let canvas_only = EdgeSecrets {
        admin_jwt_secret: None,
        ..base()
    };
    assert_eq!(canvas_only.admin_jwt().unwrap().expose_secret(), &"b".repeat(40));
}
