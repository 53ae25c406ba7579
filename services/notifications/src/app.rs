//! What the service's parts share: the store, the keys, the vendors, canvas (for patients'
//! contact details) and the settings read at start.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use era_kit::{
    auth::{Caller, InternalTokens},
    sealing::Keyring,
};
use era_proto::canvas::v1::{self as canvas, canvas_service_client::CanvasServiceClient};
use tokio::sync::Notify;
use tonic::transport::Channel as GrpcChannel;

use crate::{
    config::Config,
    error::{Error, Result},
    store::Store,
    templates::{Channel, Kind},
    vendors::{HubSpot, SendGrid, Twilio},
};

#[derive(Debug)]
pub(crate) struct App {
    pub(crate) store: Store,
    pub(crate) keys: Keyring,
    pub(crate) email: SendGrid,
    pub(crate) sms: Twilio,
    pub(crate) hubspot: HubSpot,
    /// Serialises work on one reply's idempotency key across calls and replicas.
    pub(crate) locks: era_kit::keylock::KeyLocks,
    canvas: CanvasServiceClient<GrpcChannel>,
    tokens: InternalTokens,
    pub(crate) channels: BTreeMap<Kind, Vec<Channel>>,
    pub(crate) schedule: Vec<Duration>,
    pub(crate) lease: Duration,
    pub(crate) poll: Duration,
    /// Wakes this replica's worker when a message is recorded, so a send does not wait for a poll.
    pub(crate) wake: Notify,
    /// The page a magic link opens (`?token=` is appended).
    pub(crate) magic_link_url: String,
}

pub(crate) type Shared = Arc<App>;

/// A patient's contact details as the outbox needs them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Contact {
    pub(crate) first_name: String,
    pub(crate) full_name: String,
    pub(crate) email: String,
    pub(crate) phone: String,
}

impl App {
    pub(crate) fn new(config: &Config, store: Store) -> anyhow::Result<Self> {
        let err = |e: era_kit::config::ConfigError| anyhow::anyhow!("{e}");
        let locks = store.locks();
        Ok(Self {
            store,
            keys: config.keys.keyring().map_err(err)?,
            email: SendGrid::new(&config.email)?,
            sms: Twilio::new(&config.sms)?,
            hubspot: HubSpot::new(&config.hubspot)?,
            locks,
            canvas: CanvasServiceClient::new(config.service.mesh.channel(&config.canvas_grpc_url)?),
            tokens: InternalTokens::new(&config.service.auth.internal_token_secret),
            channels: config.outbox.channels().map_err(err)?,
            schedule: config.outbox.schedule().map_err(err)?,
            lease: Duration::from_secs(config.outbox.lease_secs),
            poll: Duration::from_millis(config.outbox.poll_ms),
            wake: Notify::new(),
            magic_link_url: config.magic_link_url.clone(),
        })
    }

    fn canvas_request<T>(&self, message: T) -> tonic::Request<T> {
        era_kit::client::request(message, &self.tokens, &Caller::service("era-notifications"))
    }

    /// The patient's name, email and phone from their chart; `None` when Canvas has no such patient.
    pub(crate) async fn contact(&self, patient: &str) -> Result<Option<Contact>> {
        let req = self.canvas_request(canvas::GetPatientRequest {
            canvas_patient_id: patient.to_owned(),
            view: canvas::PatientView::Basic as i32,
        });
        match self.canvas.clone().get_patient(req).await {
            Ok(resp) => Ok(resp.into_inner().patient.map(|p| Contact {
                first_name: if p.preferred_name.is_empty() {
                    p.given_name.clone()
                } else {
                    p.preferred_name.clone()
                },
                full_name: format!("{} {}", p.given_name, p.family_name).trim().to_owned(),
                email: p.email,
                phone: p.phone,
            })),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(Error::Unavailable(
                "CANVAS_UNAVAILABLE",
                format!("the patient's contact details could not be read ({:?})", s.code()),
            )),
        }
    }

    /// Active Canvas patients with this email, newest first: their ids, and who each is (name and
    /// date of birth, folded) to tell one person's several charts from several people's.
    pub(crate) async fn patients_by_email(&self, email: &str) -> Result<Vec<(String, String)>> {
        let req = self.canvas_request(canvas::SearchPatientsRequest {
            email: email.to_owned(),
            ..Default::default()
        });
        match self.canvas.clone().search_patients(req).await {
            Ok(resp) => {
                let mut found = resp.into_inner().patients;
                found.retain(|p| p.active && p.email.eq_ignore_ascii_case(email));
                found.sort_by_key(|p| std::cmp::Reverse(p.created_at.as_ref().map(|t| (t.seconds, t.nanos))));
                Ok(found
                    .into_iter()
                    .map(|p| {
                        let person = format!("{}|{}|{}", p.given_name, p.family_name, p.birth_date).to_lowercase();
                        (p.id, person)
                    })
                    .collect())
            }
            Err(s) => Err(Error::Unavailable(
                "CANVAS_UNAVAILABLE",
                format!("patients could not be searched ({:?})", s.code()),
            )),
        }
    }
}
