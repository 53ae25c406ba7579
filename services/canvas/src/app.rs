//! What every part of the service shares: the Canvas client, the store, and the pharmacy-routing
//! peer (dosage options, the prescriber for a state).

use std::{collections::HashMap, sync::Arc};

use era_kit::auth::{Caller, InternalTokens};
use era_proto::pharmacy_routing::v1::{self as routing, pharmacy_routing_service_client::PharmacyRoutingServiceClient};
use tokio::sync::RwLock;
use tonic::transport::Channel;

use crate::{
    config::Config,
    convert::NPI_SYSTEM,
    error::{Error, Result},
    fhir::{model, FhirClient},
    store::Store,
};

/// Upper bound on list pages.
pub(crate) const MAX_PAGE_SIZE: i32 = 100;

#[derive(Debug)]
pub(crate) struct App {
    pub(crate) fhir: FhirClient,
    pub(crate) store: Store,
    routing: PharmacyRoutingServiceClient<Channel>,
    tokens: InternalTokens,
    pub(crate) intake_questionnaire_id: String,
    /// NPI -> Canvas practitioner id; practitioners do not change ids.
    practitioner_by_npi: RwLock<HashMap<String, String>>,
    /// Questionnaires by id, refreshed after QUESTIONNAIRE_TTL (they change rarely, and every
    /// intake needs one).
    questionnaires: RwLock<HashMap<String, (std::time::Instant, Arc<model::Questionnaire>)>>,
}

const QUESTIONNAIRE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

pub(crate) type Shared = Arc<App>;

impl App {
    pub(crate) fn new(config: &Config, store: Store) -> anyhow::Result<Self> {
        Ok(Self {
            fhir: FhirClient::new(&config.canvas)?,
            store,
            routing: PharmacyRoutingServiceClient::new(config.service.mesh.channel(&config.pharmacy_routing_grpc_url)?),
            tokens: InternalTokens::new(&config.service.auth.internal_token_secret),
            intake_questionnaire_id: config.canvas.intake_questionnaire_id.clone(),
            practitioner_by_npi: RwLock::new(HashMap::new()),
            questionnaires: RwLock::new(HashMap::new()),
        })
    }

    fn routing_request<T>(&self, message: T) -> tonic::Request<T> {
        era_kit::client::request(message, &self.tokens, &Caller::service("era-canvas"))
    }

    /// The catalogue entry of a medication; `None` when the catalogue does not know it.
    pub(crate) async fn medication(&self, id: &str) -> Result<Option<routing::Medication>> {
        let req = self.routing_request(routing::GetMedicationRequest { id: id.to_owned() });
        match self.routing.clone().get_medication(req).await {
            Ok(resp) => Ok(resp.into_inner().medication),
            Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => Ok(None),
            Err(s) => Err(Error::Peer(s)),
        }
    }

    /// The route for a patient's state and medication. Refusals (excluded state, no route) come back
    /// as the routing service worded them, with their reason codes.
    pub(crate) async fn route(&self, state: &str, medication: &str) -> Result<routing::DecideRouteResponse> {
        let req = self.routing_request(routing::DecideRouteRequest {
            state: state.to_owned(),
            medication: medication.to_owned(),
        });
        match self.routing.clone().decide_route(req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => Err(Error::Precondition(
                routing_reason(era_kit::error::reason_of(&s).as_deref().unwrap_or("NOT_ROUTABLE")),
                s.message().to_owned(),
            )),
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                let field = match era_kit::error::violations_of(&s).first().map(|v| v.field.as_str()) {
                    Some("medication") => "submission.medication",
                    _ => "submission.demographics.address.state",
                };
                Err(Error::field(field, "is not served: ".to_owned() + s.message()))
            }
            Err(s) => Err(Error::Peer(s)),
        }
    }

    /// A Canvas questionnaire (cached). NOT_FOUND in Canvas is the caller's bad id.
    pub(crate) async fn questionnaire(&self, id: &str, field: &str) -> Result<Arc<model::Questionnaire>> {
        if let Some((at, q)) = self.questionnaires.read().await.get(id) {
            if at.elapsed() < QUESTIONNAIRE_TTL {
                return Ok(q.clone());
            }
        }
        let q = match self.fhir.read::<model::Questionnaire>("Questionnaire", id).await {
            Ok(q) => Arc::new(q),
            Err(crate::fhir::FhirError::NotFound { .. }) => {
                return Err(Error::field(field, "is not a questionnaire in Canvas"))
            }
            Err(e) => return Err(e.into()),
        };
        self.questionnaires
            .write()
            .await
            .insert(id.to_owned(), (std::time::Instant::now(), q.clone()));
        Ok(q)
    }

    /// A Canvas write made under idempotency key `key`: when Canvas refuses it outright (4xx, or the
    /// credentials), nothing was created and the key is freed for a retry; any other failure leaves
    /// the outcome unknown for the next attempt to look into.
    pub(crate) async fn guarded<T>(
        &self,
        key: &str,
        write: impl std::future::Future<Output = crate::fhir::FhirResult<T>>,
    ) -> Result<T> {
        match write.await {
            Ok(t) => Ok(t),
            Err(e @ (crate::fhir::FhirError::Rejected { .. } | crate::fhir::FhirError::Credentials(_))) => {
                self.store.reject_write(key).await?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The Canvas practitioner with this NPI (searched once, then remembered).
    pub(crate) async fn practitioner_for_npi(&self, npi: &str) -> Result<String> {
        if npi.is_empty() {
            return Err(Error::Precondition(
                "PRESCRIBER_NOT_IN_CANVAS",
                "the route names no prescriber NPI".into(),
            ));
        }
        if let Some(id) = self.practitioner_by_npi.read().await.get(npi) {
            return Ok(id.clone());
        }
        let page = self
            .fhir
            .search::<model::Practitioner>(
                "Practitioner",
                &[
                    ("npi-number", npi.to_owned()),
                    ("include-non-schedulable-practitioners", "true".into()),
                ],
            )
            .await?;
        // Canvas has been seen to ignore some Practitioner filters: check the NPI ourselves.
        let found = page
            .items
            .iter()
            .find(|p| {
                p.identifier
                    .iter()
                    .any(|i| i.system.as_deref() == Some(NPI_SYSTEM) && i.value.as_deref() == Some(npi))
            })
            .map(|p| p.id.clone())
            .ok_or_else(|| {
                Error::Precondition(
                    "PRESCRIBER_NOT_IN_CANVAS",
                    format!("no Canvas practitioner has NPI {npi}"),
                )
            })?;
        self.practitioner_by_npi
            .write()
            .await
            .insert(npi.to_owned(), found.clone());
        Ok(found)
    }
}

/// Reason codes are `&'static str`; the routing service's are a small fixed set.
fn routing_reason(reason: &str) -> &'static str {
    match reason {
        "STATE_EXCLUDED" => "STATE_EXCLUDED",
        "NO_ACTIVE_ROUTE" => "NO_ACTIVE_ROUTE",
        "MEDICATION_NOT_AVAILABLE" => "MEDICATION_NOT_AVAILABLE",
        "NO_LICENSED_PRESCRIBER" => "NO_LICENSED_PRESCRIBER",
        _ => "NOT_ROUTABLE",
    }
}

/// Page size within bounds: 0 means `default`.
pub(crate) fn page_size(requested: i32, default: i32) -> i32 {
    match requested {
        n if n <= 0 => default,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Offset page tokens for lists backed by Canvas searches.
pub(crate) fn offset_from_token(token: &str) -> Result<u32> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .strip_prefix("o")
        .and_then(|n| n.parse().ok())
        // Canvas pages by offset; nothing useful lies beyond this.
        .filter(|n| *n <= 1_000_000)
        .ok_or_else(|| Error::field("page.page_token", "is not a token this list issued"))
}

pub(crate) fn offset_token(offset: u32) -> String {
    format!("o{offset}")
}
