use era_kit::auth::Caller;
use era_proto::pharmacy_routing::v1::{ApproveTaskRequest, GetRoutingMatrixRequest};
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

use crate::{bad_fields, Routing};

#[tokio::test]
async fn calls_without_credentials_are_refused_but_health_answers() {
    let routing = Routing::spawn().await;
    let status = routing
        .client
        .clone()
        .get_routing_matrix(tonic::Request::new(GetRoutingMatrixRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut wrong = tonic::Request::new(GetRoutingMatrixRequest {});
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer not-the-secret".parse().unwrap());
    assert_eq!(
        routing
            .client
            .clone()
            .get_routing_matrix(wrong)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mut health = HealthClient::new(routing.channel.clone());
    for service in ["", "era.pharmacy_routing.v1.PharmacyRoutingService"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn a_patient_token_cannot_read_the_matrix() {
    let routing = Routing::spawn().await;
    let req = routing.as_caller(GetRoutingMatrixRequest {}, &Caller::patient("pat-1"));
    assert_eq!(
        routing.client.clone().get_routing_matrix(req).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let req = routing.as_caller(GetRoutingMatrixRequest {}, &Caller::admin("ops@clinic.example"));
    assert!(routing.client.clone().get_routing_matrix(req).await.is_ok());
}

#[tokio::test]
async fn an_approval_is_checked_before_anything_is_read_or_written() {
    let routing = Routing::spawn().await;
    let status = routing
        .client
        .clone()
        .approve_task(routing.admin(ApproveTaskRequest {
            task_id: "../x".into(),
            note: "n".repeat(4001),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["task_id", "dose_label", "note"]);
    let runs: i64 = sqlx::query_scalar("select count(*) from orchestration_runs")
        .fetch_one(&routing.db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 0);
}

#[tokio::test]
async fn the_service_role_may_not_rewrite_audit_trails_or_remove_runs_and_orders() {
    let routing = Routing::spawn().await;
    let pool = era_kit::db::as_role(&routing.db.pool, era_pharmacy_routing::SERVICE_ROLE);
    let role: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(role, era_pharmacy_routing::SERVICE_ROLE);
    for sql in [
        "update routing_audit set note = 'x'",
        "delete from sync_logs",
        "truncate sync_logs",
        "update pharmacy_callbacks set status = 'x'",
        "delete from orchestration_runs",
        "delete from pharmacy_orders",
        "delete from refills",
        "update medications set price_cents = 1",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        let code = err.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
}
