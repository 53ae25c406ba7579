use std::time::Duration;

use era_proto::pharmacy_routing::v1::{DecideRouteRequest, DecideRouteResponse, DecisionReason};
use tonic::{Code, Status};

use crate::{bad_fields, Routing};

/// The default matrix's 18 GMP states (configuration in migration 0002).
const GMP_STATES: [&str; 18] = [
    "AL", "AZ", "FL", "GA", "IL", "IN", "KY", "LA", "MI", "MO", "MS", "NJ", "NY", "OH", "PA", "SC", "TN", "VA",
];
const EXCLUDED: [&str; 6] = ["MN", "CA", "TX", "AR", "NC", "OK"];
const ALL: [&str; 51] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
];

impl Routing {
    async fn decide(&self, state: &str, medication: &str) -> Result<DecideRouteResponse, Status> {
        let req = DecideRouteRequest {
            state: state.into(),
            medication: medication.into(),
        };
        self.client
            .clone()
            .decide_route(self.admin(req))
            .await
            .map(tonic::Response::into_inner)
    }
}

fn reason(status: &Status) -> Option<String> {
    era_kit::error::reason_of(status)
}

#[tokio::test]
async fn every_state_and_dc_routes_to_its_default_pharmacy_and_prescriber() {
    let routing = Routing::spawn().await;
    let mut gmp = 0;
    let mut fallback = 0;
    for state in ALL {
        let result = routing.decide(state, "").await;
        if EXCLUDED.contains(&state) {
            let status = result.expect_err(state);
            assert_eq!(status.code(), Code::FailedPrecondition, "{state}");
            assert_eq!(reason(&status).as_deref(), Some("STATE_EXCLUDED"), "{state}");
            continue;
        }
        let d = result.unwrap_or_else(|e| panic!("{state}: {e:?}"));
        let pharmacy = d.pharmacy.unwrap();
        let prescriber = d.prescriber.unwrap();
        assert_eq!(d.state, state);
        assert_eq!(d.reason, DecisionReason::PrimaryRoute as i32);
        if GMP_STATES.contains(&state) {
            gmp += 1;
            assert_eq!(
                (pharmacy.id.as_str(), prescriber.name.as_str()),
                ("gmp", "Ali Nolan FNP-C"),
                "{state}"
            );
            assert_eq!(prescriber.npi, "1982609764");
        } else {
            fallback += 1;
            assert_eq!(
                (pharmacy.id.as_str(), prescriber.name.as_str()),
                ("boothwyn", "Neelima Singh MD"),
                "{state}"
            );
            assert_eq!(prescriber.npi, "1164633533");
        }
        assert!(d.explanation.starts_with(state), "{}", d.explanation);
    }
    assert_eq!((gmp, fallback), (18, 27));
}

#[tokio::test]
async fn input_is_normalised_for_case_and_whitespace() {
    let routing = Routing::spawn().await;
    let d = routing.decide("  ga\t", " SemaGlutide ").await.unwrap();
    assert_eq!(d.state, "GA");
    assert_eq!(d.pharmacy.unwrap().id, "gmp");
    assert_eq!(routing.decide("dc", "").await.unwrap().state, "DC");
    let status = routing.decide(" tx ", "").await.unwrap_err();
    assert_eq!(reason(&status).as_deref(), Some("STATE_EXCLUDED"));
}

#[tokio::test]
async fn bad_input_names_the_field_and_territories_are_refused() {
    let routing = Routing::spawn().await;
    for bad in ["", "  ", "PR", "gu", "VI", "ZZ", "Georgia", "G1", "G"] {
        let status = routing.decide(bad, "").await.unwrap_err();
        assert_eq!(bad_fields(&status), vec!["state"], "{bad:?}");
    }
    let status = routing.decide("PR", "").await.unwrap_err();
    assert!(status.message().contains("territory"), "{}", status.message());
    let status = routing.decide("GA", "aspirin").await.unwrap_err();
    assert_eq!(bad_fields(&status), vec!["medication"]);
    let status = routing.decide("XX", "not a drug!").await.unwrap_err();
    assert_eq!(bad_fields(&status), vec!["state", "medication"]);
}

#[tokio::test]
async fn a_medication_a_pharmacy_cannot_fill_falls_back_to_the_next_route() {
    let routing = Routing::spawn().await;
    let d = routing.decide("WY", "tirzepatide").await.unwrap();
    assert_eq!(d.pharmacy.unwrap().id, "strive");
    assert_eq!(d.reason, DecisionReason::FallbackPharmacy as i32);
    assert_eq!(d.priority, 2);
    let d = routing.decide("WY", "semaglutide").await.unwrap();
    assert_eq!(d.pharmacy.unwrap().id, "boothwyn");
    assert_eq!(d.reason, DecisionReason::PrimaryRoute as i32);
}

/// Changes made in SQL behind the service's back reach it through the tables' change triggers,
/// well within the 5 s this waits (the safety-net reload comes only every 30 s).
async fn wait_for<F>(routing: &Routing, state: &str, mut until: F)
where
    F: FnMut(&Result<DecideRouteResponse, Status>) -> bool,
{
    for _ in 0..100 {
        if until(&routing.decide(state, "").await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service never saw the change to {state}");
}

#[tokio::test]
async fn a_lapsed_licence_is_not_routed_to_and_the_answer_says_when_no_one_is_left() {
    let routing = Routing::spawn().await;
    // Warm the snapshot first so the change below must arrive through a reload.
    assert_eq!(
        routing.decide("GA", "").await.unwrap().prescriber.unwrap().id,
        "ali-nolan"
    );

    sqlx::query(
        "update prescriber_licences set expires_on = current_date - 1 where prescriber_id = 'ali-nolan' and state = 'GA'",
    )
    .execute(&routing.db.pool)
    .await
    .unwrap();
    wait_for(&routing, "GA", |r| r.is_err()).await;
    let status = routing.decide("GA", "").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("NO_LICENSED_PRESCRIBER"));

    // Another prescriber licensed there takes over, and the answer says why.
    sqlx::query(
        "insert into prescriber_licences (prescriber_id, state, licence_number, expires_on)
         values ('neelima-singh', 'GA', 'TEST-GA', current_date)",
    )
    .execute(&routing.db.pool)
    .await
    .unwrap();
    wait_for(&routing, "GA", |r| r.is_ok()).await;
    let d = routing.decide("GA", "").await.unwrap();
    assert_eq!(d.prescriber.unwrap().npi, "1164633533");
    assert_eq!(d.pharmacy.unwrap().id, "gmp");
    assert_eq!(d.reason, DecisionReason::FallbackPrescriber as i32);
    assert!(d.explanation.contains("no current licence"), "{}", d.explanation);
}
