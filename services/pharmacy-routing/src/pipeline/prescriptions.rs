//! Prescriptions written in Canvas, announced by the clinic's Canvas plugin. An event is a notice,
//! not the truth: the MedicationRequest is read from Canvas, and what it says now decides. A new
//! active prescription of a catalogue medication starts a fulfilment run unless one already covers
//! it (an earlier event's, or the Rx Review approval it was written for); a stopped one starts a
//! stop run that undoes its fulfilment. Each event id is answered once, and the same answer is
//! given to a repeat.

use std::sync::Arc;

use era_proto::canvas::v1 as canvas;
use tonic::Code;
use uuid::Uuid;

use super::{
    runs::{self, Inserted, NewRun, Run},
    Pipeline,
};
use crate::{
    error::{Error, Result},
    store::{DoseRow, Medication, Snapshot},
};

/// What became of an event (stored by name; the proto enum mirrors it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handled {
    Started,
    AlreadyFulfilling,
    FulfilledByApproval,
    NotActive,
    RefillIgnored,
    NotInCatalogue,
    Stopping,
    NothingToStop,
    DoseChanged,
    NoChange,
}

impl Handled {
    const ALL: [Handled; 10] = [
        Handled::Started,
        Handled::AlreadyFulfilling,
        Handled::FulfilledByApproval,
        Handled::NotActive,
        Handled::RefillIgnored,
        Handled::NotInCatalogue,
        Handled::Stopping,
        Handled::NothingToStop,
        Handled::DoseChanged,
        Handled::NoChange,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Handled::Started => "started",
            Handled::AlreadyFulfilling => "already_fulfilling",
            Handled::FulfilledByApproval => "fulfilled_by_approval",
            Handled::NotActive => "not_active",
            Handled::RefillIgnored => "refill_ignored",
            Handled::NotInCatalogue => "not_in_catalogue",
            Handled::Stopping => "stopping",
            Handled::NothingToStop => "nothing_to_stop",
            Handled::DoseChanged => "dose_changed",
            Handled::NoChange => "no_change",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

/// One plugin event about a prescription, validated.
#[derive(Debug)]
pub(crate) struct PrescriptionEvent {
    pub event_id: String,
    pub medication_request_id: String,
    pub canvas_patient_id: String,
    /// PRESCRIPTION_CREATED (true) or PRESCRIPTION_UPDATED.
    pub created: bool,
}

/// The answer to an event: the outcome, the run it concerns, and whether this call processed it.
pub(crate) type EventAnswer = (Handled, Option<Run>, bool);

/// The catalogue medication and dose a Canvas prescription names: the medication by its RxNorm
/// code, the dose by its amount ("0.25 mg" selects "0.25 mg weekly").
pub(crate) fn catalogue_match<'a>(
    snapshot: &'a Snapshot,
    p: &canvas::Prescription,
) -> Option<(&'a Medication, &'a DoseRow)> {
    let med = snapshot
        .medications
        .values()
        .find(|m| m.row.active && !m.row.rxnorm_code.is_empty() && m.row.rxnorm_code == p.rxnorm_code)?;
    let wanted = amount(&p.dose)?;
    let dose = med.doses.iter().find(|d| amount(&d.label) == Some(wanted.clone()))?;
    Some((med, dose))
}

/// "0.25 mg weekly" → (0.25, "mg"); "5.0 mg" → (5, "mg").
fn amount(text: &str) -> Option<(u64, String)> {
    let mut words = text.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    let unit = words.next()?.to_ascii_lowercase();
    // Compared in millionths, so 5 and 5.0 are one amount.
    Some(((value * 1e6).round() as u64, unit))
}

const STOPPED: [canvas::PrescriptionStatus; 3] = [
    canvas::PrescriptionStatus::Stopped,
    canvas::PrescriptionStatus::Cancelled,
    canvas::PrescriptionStatus::EnteredInError,
];

impl Pipeline {
    /// Handles one plugin event about a prescription (see the module's doc).
    pub(crate) async fn prescription_event(self: &Arc<Self>, e: PrescriptionEvent) -> Result<EventAnswer> {
        if let Some((outcome, run)) = self.answered(&e.event_id).await? {
            return Ok((outcome, run, false));
        }
        let p = self.read_prescription(&e.medication_request_id).await?;
        if p.canvas_patient_id != e.canvas_patient_id {
            return Err(Error::field("canvas_patient_id", "is not the prescription's patient"));
        }
        let status = canvas::PrescriptionStatus::try_from(p.status).unwrap_or(canvas::PrescriptionStatus::Unknown);
        let (outcome, run) = if STOPPED.contains(&status) {
            if e.created {
                (Handled::NotActive, None)
            } else {
                self.stop(&p).await?
            }
        } else if status != canvas::PrescriptionStatus::Active {
            (Handled::NotActive, None)
        } else if p.refill {
            (Handled::RefillIgnored, None)
        } else if e.created {
            self.fulfil(&p).await?
        } else {
            self.dose_change(&p).await?
        };
        let event_type = if e.created {
            "PRESCRIPTION_CREATED"
        } else {
            "PRESCRIPTION_UPDATED"
        };
        sqlx::query(
            "insert into prescription_events (event_id, event_type, medication_request_id, outcome, run_id)
             values ($1, $2, $3, $4, $5) on conflict (event_id) do nothing",
        )
        .bind(&e.event_id)
        .bind(event_type)
        .bind(&e.medication_request_id)
        .bind(outcome.as_str())
        .bind(run.as_ref().map(|r| r.id))
        .execute(&self.pool)
        .await?;
        tracing::info!(
            event = %e.event_id,
            prescription = %e.medication_request_id,
            outcome = outcome.as_str(),
            run = ?run.as_ref().map(|r| r.id),
            "Canvas prescription event handled"
        );
        Ok((outcome, run, true))
    }

    /// The first answer to this event id, if it was answered.
    async fn answered(&self, event_id: &str) -> Result<Option<(Handled, Option<Run>)>> {
        let row: Option<(String, Option<Uuid>)> =
            sqlx::query_as("select outcome, run_id from prescription_events where event_id = $1")
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((outcome, run_id)) = row else {
            return Ok(None);
        };
        let outcome = Handled::parse(&outcome)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown stored outcome {outcome}")))?;
        let run = match run_id {
            Some(id) => runs::get(&self.pool, id).await?,
            None => None,
        };
        Ok(Some((outcome, run)))
    }

    async fn read_prescription(&self, id: &str) -> Result<canvas::Prescription> {
        let req = self.request(canvas::GetPrescriptionRequest { id: id.to_owned() });
        match self.canvas.clone().get_prescription(req).await {
            Ok(r) => r.into_inner().prescription.ok_or_else(|| Error::NotFound {
                what: "prescription",
                id: id.to_owned(),
            }),
            Err(s) if s.code() == Code::NotFound => Err(Error::NotFound {
                what: "prescription",
                id: id.to_owned(),
            }),
            Err(s) if s.code() == Code::InvalidArgument => {
                Err(Error::field("medication_request_id", "is not a Canvas id"))
            }
            Err(s) => Err(Error::Unavailable(
                "CANVAS_UNAVAILABLE",
                format!("the prescription could not be read ({:?})", s.code()),
            )),
        }
    }

    /// Starts the prescription's fulfilment run, unless a run already covers it.
    async fn fulfil(self: &Arc<Self>, p: &canvas::Prescription) -> Result<(Handled, Option<Run>)> {
        let snapshot = self.snapshot().await?;
        let Some((med, dose)) = catalogue_match(&snapshot, p) else {
            return Ok((Handled::NotInCatalogue, None));
        };
        let prescriber = if p.requester_practitioner_id.is_empty() {
            "canvas-plugin"
        } else {
            p.requester_practitioner_id.as_str()
        };
        let new = NewRun {
            id: Uuid::new_v4(),
            task_id: None,
            kind: "prescription",
            canvas_patient_id: &p.canvas_patient_id,
            medication: &med.row.id,
            dose_label: &dose.label,
            practitioner_id: &p.requester_practitioner_id,
            note: None,
            approved_by: prescriber,
            idempotency_key: "",
            owner: self.owner,
            lease_secs: self.lease_secs(),
            medication_request_id: Some(&p.id),
            target_run_id: None,
            cover_days: med.row.days_supply,
            refill_id: None,
            payment_reference: None,
        };
        match runs::insert(&self.pool, &new).await? {
            Inserted::New(run) => {
                tracing::info!(run = %run.id, "prescription run recorded");
                self.start(run.clone());
                Ok((Handled::Started, Some(run)))
            }
            Inserted::Covered(run) => Ok((Handled::FulfilledByApproval, Some(run))),
            Inserted::Taken => {
                let run = runs::for_prescription(&self.pool, &p.id, &["approve", "prescription"]).await?;
                Ok((Handled::AlreadyFulfilling, run))
            }
        }
    }

    /// Starts the stop run that undoes the prescription's fulfilment, once.
    async fn stop(self: &Arc<Self>, p: &canvas::Prescription) -> Result<(Handled, Option<Run>)> {
        let Some(target) = runs::for_prescription(&self.pool, &p.id, &["approve", "prescription"]).await? else {
            return Ok((Handled::NothingToStop, None));
        };
        let new = NewRun {
            id: Uuid::new_v4(),
            task_id: None,
            kind: "stop",
            canvas_patient_id: &target.canvas_patient_id,
            medication: &target.medication,
            dose_label: &target.dose_label,
            practitioner_id: &p.requester_practitioner_id,
            note: None,
            approved_by: if p.requester_practitioner_id.is_empty() {
                "canvas-plugin"
            } else {
                &p.requester_practitioner_id
            },
            idempotency_key: "",
            owner: self.owner,
            lease_secs: self.lease_secs(),
            medication_request_id: Some(&p.id),
            target_run_id: Some(target.id),
            cover_days: 0,
            refill_id: None,
            payment_reference: None,
        };
        match runs::insert(&self.pool, &new).await? {
            Inserted::New(run) => {
                tracing::info!(run = %run.id, target = %target.id, "stop run recorded");
                self.start(run.clone());
                Ok((Handled::Stopping, Some(run)))
            }
            Inserted::Taken | Inserted::Covered(_) => Ok((
                Handled::Stopping,
                runs::for_prescription(&self.pool, &p.id, &["stop"]).await?,
            )),
        }
    }

    /// An active prescription changed: the fill in progress stands; a new dose applies to the
    /// refills still to come.
    async fn dose_change(&self, p: &canvas::Prescription) -> Result<(Handled, Option<Run>)> {
        let Some(target) = runs::for_prescription(&self.pool, &p.id, &["approve", "prescription"]).await? else {
            return Ok((Handled::NoChange, None));
        };
        let snapshot = self.snapshot().await?;
        let Some((med, dose)) = catalogue_match(&snapshot, p) else {
            return Ok((Handled::NotInCatalogue, Some(target)));
        };
        if med.row.id != target.medication || dose.label == target.dose_label {
            // Another medication is a new prescription in Canvas (its own events), not an update.
            return Ok((Handled::NoChange, Some(target)));
        }
        let mut tx = self.pool.begin().await?;
        // Both in one transaction with the run's row held: the run schedules its refills under the
        // same lock, so they take the new dose whether they exist yet or not.
        sqlx::query("update orchestration_runs set refill_dose_label = $2 where id = $1")
            .bind(target.id)
            .bind(&dose.label)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "update refills set dose_label = $2, updated_at = now()
             where order_id in (select id from pharmacy_orders where run_id = $1) and status = any($3)",
        )
        .bind(target.id)
        .bind(&dose.label)
        .bind(super::refills::OPEN)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((Handled::DoseChanged, Some(target)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_compare_by_value_and_unit() {
        assert_eq!(amount("0.25 mg weekly"), amount("0.25 mg"));
        assert_eq!(amount("5 mg weekly"), amount("5.0 mg"));
        assert_eq!(amount("4 MG as needed"), amount("4 mg"));
        assert_ne!(amount("2.5 mg weekly"), amount("0.25 mg"));
        assert_eq!(amount("weekly"), None);
        assert_eq!(amount("1"), None);
    }

    #[test]
    fn every_outcome_reads_back() {
        for h in Handled::ALL {
            assert_eq!(Handled::parse(h.as_str()), Some(h));
        }
    }
}
