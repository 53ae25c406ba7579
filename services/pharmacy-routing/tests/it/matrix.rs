use era_kit::auth::Caller;
use era_proto::{
    common::v1::PageRequest,
    pharmacy_routing::v1::{
        DecideRouteRequest, GetRoutingMatrixRequest, GetStateRoutingRequest, ListMedicationsRequest,
        ListRoutingAuditRequest, Route, UpdateStateRoutingRequest,
    },
};
use tonic::Code;

use crate::{bad_fields, Routing};

fn route(pharmacy: &str, prescriber: &str, priority: i32) -> Route {
    Route {
        pharmacy_id: pharmacy.into(),
        prescriber_id: prescriber.into(),
        active: true,
        priority,
    }
}

async fn audit_count(routing: &Routing) -> i64 {
    sqlx::query_scalar("select count(*) from routing_audit")
        .fetch_one(&routing.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_matrix_lists_every_state_with_its_routes() {
    let routing = Routing::spawn().await;
    let m = routing
        .client
        .clone()
        .get_routing_matrix(routing.admin(GetRoutingMatrixRequest {}))
        .await
        .unwrap();
    let m = m.into_inner();
    assert_eq!(m.states.len(), 51);
    assert_eq!(m.states.iter().filter(|s| s.excluded).count(), 6);
    let wy = m.states.iter().find(|s| s.state == "WY").unwrap();
    let order: Vec<_> = wy.routes.iter().map(|r| (r.pharmacy_id.as_str(), r.priority)).collect();
    assert_eq!(order, vec![("boothwyn", 1), ("strive", 2)]);
    assert_eq!(m.pharmacies.len(), 3);
    let nolan = m.prescribers.iter().find(|p| p.npi == "1982609764").unwrap();
    assert_eq!(nolan.licences.len(), 18);
}

#[tokio::test]
async fn an_update_changes_the_route_and_appends_an_audit_row_naming_who() {
    let routing = Routing::spawn().await;
    let mut client = routing.client.clone();
    let admin = Caller::admin("ops@clinic.example");
    let update = UpdateStateRoutingRequest {
        state: " wy ".into(),
        excluded: false,
        routes: vec![
            route("strive", "neelima-singh", 1),
            route("boothwyn", "neelima-singh", 5),
        ],
        note: "Boothwyn paused intake".into(),
        actor: None,
    };
    let resp = client
        .update_state_routing(routing.as_caller(update, &admin))
        .await
        .unwrap()
        .into_inner();
    let routing_now = resp.routing.unwrap();
    assert_eq!(routing_now.updated_by, "ops@clinic.example");
    assert_eq!(routing_now.routes[0].pharmacy_id, "strive");

    // The decision follows at once.
    let d = client
        .decide_route(routing.admin(DecideRouteRequest {
            state: "WY".into(),
            medication: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.pharmacy.unwrap().id, "strive");

    let audit = client
        .list_routing_audit(routing.admin(ListRoutingAuditRequest {
            state: "wy".into(),
            page: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.entries.len(), 1);
    let entry = &audit.entries[0];
    assert_eq!(
        (entry.id, entry.state.as_str(), entry.changed_by.as_str()),
        (resp.audit_id, "WY", "ops@clinic.example")
    );
    assert_eq!(entry.note, "Boothwyn paused intake");
    let before: serde_json::Value = serde_json::from_str(&entry.before_json).unwrap();
    let after: serde_json::Value = serde_json::from_str(&entry.after_json).unwrap();
    assert_eq!(before["routes"][0]["pharmacyId"], "boothwyn");
    assert_eq!(after["routes"][0]["pharmacyId"], "strive");
    assert_eq!(after["routes"][1]["priority"], 5);

    // Excluding a state needs no routes; the decision then refuses it.
    let exclude = UpdateStateRoutingRequest {
        state: "WY".into(),
        excluded: true,
        ..Default::default()
    };
    client.update_state_routing(routing.admin(exclude)).await.unwrap();
    let status = client
        .decide_route(routing.admin(DecideRouteRequest {
            state: "WY".into(),
            medication: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(era_kit::error::reason_of(&status).as_deref(), Some("STATE_EXCLUDED"));
    assert_eq!(audit_count(&routing).await, 2);
    let got = client
        .get_state_routing(routing.admin(GetStateRoutingRequest { state: "wy".into() }))
        .await
        .unwrap()
        .into_inner()
        .routing
        .unwrap();
    assert!(got.excluded);
    assert_eq!(got.updated_by, "admin-secret");
}

#[tokio::test]
async fn a_bad_update_names_every_bad_field_and_changes_nothing() {
    let routing = Routing::spawn().await;
    let mut client = routing.client.clone();
    let update = UpdateStateRoutingRequest {
        state: "WY".into(),
        excluded: false,
        routes: vec![
            route("nowhere", "neelima-singh", 1),
            route("strive", "ali-nolan", 0),
            route("strive", "nobody", 2),
        ],
        note: String::new(),
        actor: None,
    };
    let status = client.update_state_routing(routing.admin(update)).await.unwrap_err();
    assert_eq!(
        bad_fields(&status),
        vec![
            "routes[0].pharmacy_id",
            "routes[1].prescriber_id",
            "routes[1].priority",
            "routes[2].pharmacy_id",
            "routes[2].prescriber_id",
        ]
    );
    let none_active = UpdateStateRoutingRequest {
        state: "WY".into(),
        routes: vec![Route {
            active: false,
            ..route("strive", "neelima-singh", 1)
        }],
        ..Default::default()
    };
    let status = client
        .update_state_routing(routing.admin(none_active))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), vec!["routes"]);
    let status = client
        .update_state_routing(routing.admin(UpdateStateRoutingRequest {
            state: "PR".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), vec!["state"]);

    assert_eq!(audit_count(&routing).await, 0);
    let routes: i64 = sqlx::query_scalar("select count(*) from state_routes where state = 'WY'")
        .fetch_one(&routing.db.pool)
        .await
        .unwrap();
    assert_eq!(routes, 2);
}

#[tokio::test]
async fn the_audit_trail_is_append_only_even_for_replication_sessions() {
    let routing = Routing::spawn().await;
    let update = UpdateStateRoutingRequest {
        state: "WY".into(),
        routes: vec![route("strive", "neelima-singh", 1)],
        ..Default::default()
    };
    routing
        .client
        .clone()
        .update_state_routing(routing.admin(update))
        .await
        .unwrap();
    let mut conn = routing.db.pool.acquire().await.unwrap();
    for replica in [false, true] {
        if replica {
            sqlx::query("set session_replication_role = replica")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        for sql in [
            "update routing_audit set note = 'rewritten'",
            "delete from routing_audit",
            "truncate routing_audit",
        ] {
            let err = sqlx::query(sql).execute(&mut *conn).await.expect_err(sql);
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
    }
    sqlx::query("set session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(audit_count(&routing).await, 1);
}

#[tokio::test]
async fn audit_pages_are_newest_first_and_chain_by_token() {
    let routing = Routing::spawn().await;
    let mut client = routing.client.clone();
    for priority in 1..=3 {
        let update = UpdateStateRoutingRequest {
            state: "WY".into(),
            routes: vec![route("strive", "neelima-singh", priority)],
            ..Default::default()
        };
        client.update_state_routing(routing.admin(update)).await.unwrap();
    }
    let page = |token: String| ListRoutingAuditRequest {
        state: String::new(),
        page: Some(PageRequest {
            page_size: 2,
            page_token: token,
        }),
    };
    let first = client
        .list_routing_audit(routing.admin(page(String::new())))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<i64> = first.entries.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1]);
    let token = first.page.unwrap().next_page_token;
    let second = client
        .list_routing_audit(routing.admin(page(token)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.entries.len(), 1);
    assert!(second.entries[0].id < ids[1]);
    assert_eq!(second.page.unwrap().next_page_token, "");
    let status = client
        .list_routing_audit(routing.admin(page("garbage".into())))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), vec!["page.page_token"]);
}

#[tokio::test]
async fn the_medication_catalogue_carries_prices_in_cents() {
    let routing = Routing::spawn().await;
    let meds = routing
        .client
        .clone()
        .list_medications(routing.admin(ListMedicationsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .medications;
    let sema = meds.iter().find(|m| m.id == "semaglutide").unwrap();
    assert_eq!(sema.price.as_ref().unwrap().amount_cents, 29900);
    assert_eq!(sema.doses.len(), 3);
    assert!(!meds
        .iter()
        .find(|m| m.id == "tirzepatide")
        .unwrap()
        .pharmacy_ids
        .contains(&"boothwyn".to_owned()));
    let status = routing
        .client
        .clone()
        .get_medication(routing.admin(era_proto::pharmacy_routing::v1::GetMedicationRequest { id: "nope".into() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}
