//! Driving a run: each step does its work, then its outcome and findings are committed under the
//! run's generation, and the run moves on. A step whose peer is unavailable puts the run back for a
//! later attempt; a step that fails for good sends the run through compensation to `failed`.

use std::{sync::Arc, time::Duration};

use era_proto::{
    canvas::v1 as canvas,
    common::v1::Actor,
    notifications::v1 as notifications,
    payments::v1::{self as payments, ChargeStatus},
};
use tonic::Code;
use uuid::Uuid;

use super::{
    orders::{self, Exchange, Order},
    runs::{self, Run, COMPENSATION, DONE},
    Pipeline, Stop,
};
use crate::{
    config::FailAt,
    domain,
    pharmacies::{Address, Item, OrderRequest, Patient, PharmacyError, Prescriber},
};

/// How a step ended.
pub(super) enum Outcome {
    /// Move on; the step's status is "done", "warning" or "skipped".
    Next { status: &'static str, detail: String },
    /// The run cannot succeed: compensate, then mark it failed with `reason`.
    Fail { reason: &'static str, detail: String },
    /// A peer or pharmacy is unavailable for now: try again later.
    Retry(String),
    /// As `Retry`, but not before the given time: a submission whose answer was lost must give the
    /// pharmacy time to record it before we look for it.
    RetryAfter(String, Duration),
}

pub(super) fn done(detail: impl Into<String>) -> Outcome {
    Outcome::Next {
        status: "done",
        detail: detail.into(),
    }
}

pub(super) fn fail(reason: &'static str, detail: impl Into<String>) -> Outcome {
    Outcome::Fail {
        reason,
        detail: detail.into(),
    }
}

/// Codes a peer answers when trying again later may work.
pub(super) fn passing(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

pub(super) fn cents(amount: i64, currency: &str) -> String {
    format!("{}.{:02} {}", amount / 100, amount % 100, currency.to_uppercase())
}

pub(super) type Step = std::result::Result<Outcome, Stop>;

/// Submissions of one order that may go unanswered (each after a lookup found nothing) before the
/// run stops for someone to check with the pharmacy.
const MAX_SUBMISSIONS: i32 = 3;

/// The phase name for a recovery point this version does not know.
const UNKNOWN: &str = "unknown";

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A pharmacy-controlled string as we store it: a short code, never free text (which could quote
/// a patient).
pub(crate) fn code_of(raw: &str) -> String {
    let raw = raw.trim();
    let is_code = (1..=64).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if is_code {
        raw.to_owned()
    } else {
        "unrecognised".into()
    }
}

impl Pipeline {
    /// Drives `run` (held by this replica under `run.generation`) until it finishes, is put back for
    /// later, or this replica loses it.
    pub(crate) async fn drive(self: Arc<Self>, mut run: Run) {
        // Dropped with the drive whichever way it ends (finished, put back, aborted), so a lease is
        // never renewed for work nobody does.
        let _beat = AbortOnDrop(self.clone().heartbeat(run.id, run.generation));
        let result = self.drive_steps(&mut run).await;
        if let Err(e) = result {
            // The lease runs out and another attempt resumes from the last commit.
            tracing::warn!(run = %run.id, error = %e, "a run stopped on a database error");
        }
    }

    fn heartbeat(self: Arc<Self>, id: Uuid, generation: i64) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let every = self.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                if self.halted() {
                    return;
                }
                match runs::heartbeat(&self.pool, id, generation, self.lease_secs()).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(run = %id, error = %e, "a run's heartbeat failed"),
                }
            }
        })
    }

    async fn drive_steps(&self, run: &mut Run) -> crate::error::Result<()> {
        while !run.finished() {
            if self.halted() {
                return Ok(());
            }
            let phase: &'static str = match run.phase.as_str() {
                COMPENSATION => COMPENSATION,
                DONE => DONE,
                p => run.steps().iter().find(|s| **s == p).copied().unwrap_or(UNKNOWN),
            };
            if phase != COMPENSATION
                && phase != DONE
                && run.fulfils()
                && runs::stop_requested(&self.pool, run.id).await?
            {
                // Its prescription was stopped in Canvas: nothing more is done, and what was done
                // before the charge was captured is undone.
                run.failure_reason = "prescription_stopped".to_owned();
                run.phase = COMPENSATION.to_owned();
                let Ok(mut tx) = runs::fenced(&self.pool, run.id, run.generation).await? else {
                    return Ok(());
                };
                runs::save(
                    &mut tx,
                    run,
                    Some((phase, "skipped", "the prescription was stopped in Canvas")),
                )
                .await?;
                tx.commit().await?;
                continue;
            }
            let outcome = match phase {
                COMPENSATION => self.compensate(run).await,
                DONE => Ok(done("")),
                // A phase this version does not know (a step renamed between deploys): never "done".
                UNKNOWN => Ok(fail("internal", format!("unknown step {}", run.phase))),
                step => self.step(run, step).await,
            };
            let Ok(outcome) = outcome else {
                return Ok(());
            };
            let Ok(mut tx) = runs::fenced(&self.pool, run.id, run.generation).await? else {
                tracing::info!(run = %run.id, "a run was taken over by another replica");
                return Ok(());
            };
            match outcome {
                Outcome::Retry(_) | Outcome::RetryAfter(..) => {
                    let (detail, at_least) = match outcome {
                        Outcome::RetryAfter(d, at_least) => (d, at_least),
                        Outcome::Retry(d) => (d, Duration::ZERO),
                        _ => unreachable!("matched above"),
                    };
                    let delay = self.backoff(run.attempts).max(at_least);
                    // What the step learnt before it had to stop (a charge id) is kept.
                    runs::save(&mut tx, run, None).await?;
                    runs::postpone(
                        &mut tx,
                        run.id,
                        phase,
                        &format!("retrying: {detail}"),
                        delay.as_secs_f64(),
                    )
                    .await?;
                    tx.commit().await?;
                    tracing::info!(run = %run.id, step = phase, "run step postponed");
                    return Ok(());
                }
                Outcome::Next { status, detail } => {
                    let step = (phase != COMPENSATION && phase != DONE).then_some((phase, status, detail.as_str()));
                    run.phase = match phase {
                        COMPENSATION | DONE => DONE.to_owned(),
                        p => run.after(p).to_owned(),
                    };
                    if run.phase == DONE {
                        run.status = match (phase, run.kind.as_str()) {
                            (COMPENSATION, _) => "failed",
                            (_, "deny") => "denied",
                            _ => "succeeded",
                        }
                        .to_owned();
                    }
                    if status == "warning" {
                        run.warnings.push(format!("{phase}: {detail}"));
                    }
                    runs::save(&mut tx, run, step).await?;
                    if run.status == "succeeded" && run.fulfils() && run.kind != "refill" {
                        self.schedule_refills(&mut tx, run).await?;
                    }
                    if run.finished() && run.kind == "refill" {
                        // The refill moves with its run's end, in the same commit.
                        super::refills::run_finished(&mut tx, run, &self.refill_retry).await?;
                    }
                }
                Outcome::Fail { reason, detail } => {
                    run.failure_reason = reason.to_owned();
                    run.phase = COMPENSATION.to_owned();
                    runs::save(&mut tx, run, Some((phase, "failed", detail.as_str()))).await?;
                }
            }
            tx.commit().await?;
            if self.crash(phase, FailAt::AfterCommit).is_err() {
                return Ok(());
            }
        }
        tracing::info!(run = %run.id, status = %run.status, "run finished");
        Ok(())
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let exp = Duration::from_secs(1u64 << attempts.clamp(0, 16));
        let capped = exp.min(self.retry_max);
        // Full jitter, so runs that failed together do not come back together.
        capped.mul_f64(0.5 + rand_unit() / 2.0)
    }

    async fn step(&self, run: &mut Run, step: &'static str) -> Step {
        if step == "pharmacy_sync" {
            // Its failpoints sit around the submission itself, after the order is recorded.
            return self.pharmacy_sync(run).await;
        }
        self.crash(step, FailAt::BeforeCall)?;
        let outcome = match step {
            "medication_config" => self.medication_config(run).await,
            "patient_lookup" => self.patient_lookup(run).await,
            "prescriber_routing" => self.prescriber_routing(run).await,
            "pharmacy_routing" => self.pharmacy_routing(run).await,
            "payment_authorization" => self.authorize(run).await,
            "payment" => self.capture(run).await,
            "notification" => self.notify(run).await,
            "hp_note" => self.hp_note(run).await,
            "task_completion" => self.close_task(run, canvas::TaskStatus::Completed).await,
            "task_update" => self.close_task(run, canvas::TaskStatus::Cancelled).await,
            "halt_fulfilment" => self.halt_fulfilment(run).await,
            "order_cancellation" => self.cancel_stopped_order(run).await,
            "payment_review" => self.review_payment(run).await,
            "refill_cancellation" => self.cancel_refills(run).await,
            _ => fail("internal", format!("unknown step {step}")),
        };
        self.crash(step, FailAt::AfterCall)?;
        Ok(outcome)
    }

    /// Who the run acts for: the approving admin, or the prescriber who wrote the prescription in
    /// Canvas.
    pub(super) fn actor(&self, run: &Run) -> Option<Actor> {
        Some(Actor {
            subject: run.approved_by.clone(),
            role: match run.kind.as_str() {
                "prescription" | "stop" => "practitioner",
                "refill" => "system",
                _ => "admin",
            }
            .into(),
        })
    }

    async fn medication_config(&self, run: &mut Run) -> Outcome {
        let snapshot = match self.snapshot().await {
            Ok(s) => s,
            Err(e) => return Outcome::Retry(format!("the catalogue could not be read ({e})")),
        };
        let Some(med) = snapshot.medications.get(&run.medication).filter(|m| m.row.active) else {
            return fail(
                "medication_not_configured",
                format!("{} is not in the catalogue", run.medication),
            );
        };
        if !med.doses.iter().any(|d| d.label == run.dose_label) {
            return fail(
                "medication_not_configured",
                format!("{} has no dose {}", med.row.name, run.dose_label),
            );
        }
        run.amount_cents = med.row.price_cents;
        run.currency = med.row.currency.clone();
        done(format!(
            "{} {}: {}, {} days, {} refills",
            med.row.name,
            run.dose_label,
            cents(run.amount_cents, &run.currency),
            med.row.days_supply,
            med.row.refills
        ))
    }

    async fn patient(&self, run: &Run) -> Result<canvas::Patient, Outcome> {
        let req = self.request(canvas::GetPatientRequest {
            canvas_patient_id: run.canvas_patient_id.clone(),
            view: canvas::PatientView::Basic as i32,
        });
        match self.canvas.clone().get_patient(req).await {
            Ok(r) => r
                .into_inner()
                .patient
                .ok_or_else(|| fail("patient_not_found", "Canvas has no such patient")),
            Err(s) if s.code() == Code::NotFound => Err(fail("patient_not_found", "Canvas has no such patient")),
            Err(s) if passing(s.code()) => Err(Outcome::Retry(format!("Canvas unavailable ({:?})", s.code()))),
            Err(s) => Err(fail(
                "patient_lookup_failed",
                format!("Canvas refused ({:?})", s.code()),
            )),
        }
    }

    async fn patient_lookup(&self, run: &mut Run) -> Outcome {
        let patient = match self.patient(run).await {
            Ok(p) => p,
            Err(o) => return o,
        };
        if !patient.active {
            return fail("patient_inactive", "the patient's chart is inactive");
        }
        let state = patient.address.as_ref().map(|a| a.state.clone()).unwrap_or_default();
        match domain::normalise_state("state", &state) {
            Ok(s) => {
                run.patient_state = s;
                done(format!("patient active; ships to {}", run.patient_state))
            }
            Err(_) => fail("patient_address_missing", "the patient has no US shipping state"),
        }
    }

    async fn prescriber_routing(&self, run: &mut Run) -> Outcome {
        let snapshot = match self.snapshot().await {
            Ok(s) => s,
            Err(e) => return Outcome::Retry(format!("the routing matrix could not be read ({e})")),
        };
        let Some(facts) = snapshot.state_facts(&run.patient_state) else {
            return fail(
                "state_not_served",
                format!("{} is not a state the matrix knows", run.patient_state),
            );
        };
        let fills = snapshot
            .medications
            .get(&run.medication)
            .map(|m| m.pharmacy_ids.clone())
            .unwrap_or_default();
        match domain::decide(&facts, Some((&run.medication, &fills)), chrono::Utc::now().date_naive()) {
            Ok(decision) => {
                run.prescriber_id = decision.prescriber.id.clone();
                run.pharmacy_id = decision.route.pharmacy_id.clone();
                done(format!(
                    "{} ({}), licensed in {}",
                    decision.prescriber.name, decision.prescriber.id, run.patient_state
                ))
            }
            Err(e) => {
                let reason = match e.reason() {
                    Some("STATE_EXCLUDED") => "state_excluded",
                    Some("NO_ACTIVE_ROUTE") => "no_active_route",
                    Some("MEDICATION_NOT_AVAILABLE") => "medication_not_available",
                    Some("NO_LICENSED_PRESCRIBER") => "no_licensed_prescriber",
                    _ => "routing_failed",
                };
                fail(reason, e.to_string())
            }
        }
    }

    async fn pharmacy_routing(&self, run: &mut Run) -> Outcome {
        if !self.pharmacies.contains_key(&run.pharmacy_id) {
            return fail(
                "pharmacy_not_configured",
                format!("no account is configured for pharmacy {}", run.pharmacy_id),
            );
        }
        done(format!("{} serves {}", run.pharmacy_id, run.patient_state))
    }

    /// Holds the money before the pharmacy is asked: a declined card stops the run with nothing ordered.
    async fn authorize(&self, run: &mut Run) -> Outcome {
        let req = self.request(payments::AuthorizeHoldRequest {
            canvas_patient_id: run.canvas_patient_id.clone(),
            amount_cents: run.amount_cents,
            currency: run.currency.clone(),
            reference: run.payment_reference(),
            description: if run.kind == "refill" {
                "YourEra refill".into()
            } else {
                "YourEra prescription order".into()
            },
            idempotency_key: format!("run:{}:payment_authorization", run.id),
            actor: self.actor(run),
        });
        match self.payments.clone().authorize_hold(req).await {
            Ok(r) => {
                let charge = r.into_inner().charge.unwrap_or_default();
                run.charge_id = charge.id.clone();
                match ChargeStatus::try_from(charge.status) {
                    Ok(ChargeStatus::Authorized) => done(format!(
                        "{} authorised (charge {})",
                        cents(charge.amount_cents, &charge.currency),
                        charge.id
                    )),
                    Ok(ChargeStatus::Pending | ChargeStatus::Processing) => {
                        Outcome::Retry("the authorisation is still processing".into())
                    }
                    _ => fail(
                        "payment_declined",
                        format!(
                            "the card was not authorised ({})",
                            nonempty(&charge.failure_code, "declined")
                        ),
                    ),
                }
            }
            Err(s) => match era_kit::error::reason_of(&s).as_deref() {
                Some("NO_PAYMENT_HOLD") => fail("payment_declined", "the patient has no saved card"),
                _ if passing(s.code()) => Outcome::Retry(format!("payments unavailable ({:?})", s.code())),
                _ => fail("payment_failed", format!("payments refused ({:?})", s.code())),
            },
        }
    }

    /// Places the order once: recorded before anything else, marked right before each submission
    /// (the last fenced write, so a replica that lost the run stops there); a marked order is looked
    /// up at the pharmacy by our reference before anything is submitted again.
    async fn pharmacy_sync(&self, run: &mut Run) -> Step {
        let step = "pharmacy_sync";
        let Some(adapter) = self.pharmacies.get(&run.pharmacy_id) else {
            return Ok(fail(
                "pharmacy_not_configured",
                format!("no account for {}", run.pharmacy_id),
            ));
        };
        let order = match self.record_order(run).await {
            Ok(Some(o)) => o,
            Ok(None) => return Err(Stop),
            Err(e) => return Ok(Outcome::Retry(format!("the order could not be recorded ({e})"))),
        };
        if matches!(order.status.as_str(), "rejected" | "cancelled") {
            // Refused earlier, or rejected or cancelled by the pharmacy's callback: nothing to pay for.
            return Ok(fail(
                "pharmacy_rejected",
                format!("{} {} the order", run.pharmacy_id, order.status),
            ));
        }
        if !order.external_order_id.is_empty() {
            // Placed by an earlier attempt (or learnt from the pharmacy's callback).
            return Ok(done(format!(
                "order {} accepted by {}",
                order.external_order_id, run.pharmacy_id
            )));
        }
        let exchange =
            |operation, status, http_status, detail| Exchange::of(&order, operation, status, http_status, detail);
        if let Some(started) = order.submit_started_at {
            // An earlier attempt may have placed it: ask before submitting again, once the pharmacy
            // has had the time to record it (a replica that stopped mid-call, a lost answer).
            let now = match runs::db_now(&self.pool).await {
                Ok(now) => now,
                Err(e) => return Ok(Outcome::Retry(e.to_string())),
            };
            let due = started + chrono::Duration::from_std(self.uncertain_wait).unwrap_or_default();
            if now < due {
                return Ok(Outcome::RetryAfter(
                    "waiting before asking the pharmacy about an unanswered submission".into(),
                    (due - now).to_std().unwrap_or_default(),
                ));
            }
            self.crash(step, FailAt::BeforeCall)?;
            let found = adapter.find(&order.id.to_string()).await;
            match found {
                Ok(found) if !found.is_empty() => {
                    self.crash(step, FailAt::AfterCall)?;
                    let live: Vec<_> = found.iter().filter(|f| f.live()).collect();
                    if live.len() > 1 {
                        let extra: Vec<&str> = live[1..].iter().map(|f| f.external_id.as_str()).collect();
                        push_once(
                            &mut run.warnings,
                            format!(
                                "pharmacy_sync: {} holds {} orders for this reference; cancel {}",
                                run.pharmacy_id,
                                live.len(),
                                extra.join(", ")
                            ),
                        );
                    }
                    let Some(placed) = live.first() else {
                        // It took the order and then refused or cancelled it: nothing to pay for.
                        let refused = &found[0];
                        let status = code_of(&refused.status);
                        self.note_exchange(&exchange(
                            "lookup",
                            "failure",
                            200,
                            format!("found {status}: {}", refused.external_id),
                        ))
                        .await;
                        return match self
                            .order_status(run, order.id, "rejected", Some(&refused.external_id), Some(&status))
                            .await
                        {
                            Ok(true) => Ok(fail(
                                "pharmacy_rejected",
                                format!("{} {status} the order", run.pharmacy_id),
                            )),
                            Ok(false) => Err(Stop),
                            Err(e) => Ok(Outcome::Retry(e.to_string())),
                        };
                    };
                    let detail = format!(
                        "found after an unanswered submission (status {})",
                        code_of(&placed.status)
                    );
                    return self
                        .order_placed(run, &order, &placed.external_id, 200, &detail, "lookup")
                        .await;
                }
                Ok(_) => {
                    self.note_exchange(&exchange("lookup", "success", 200, "not found: submitting".into()))
                        .await;
                }
                Err(e @ PharmacyError::Misconfigured(_)) => {
                    self.note_exchange(&exchange("lookup", "failure", 0, e.to_string()))
                        .await;
                    return Ok(fail("pharmacy_misconfigured", e.to_string()));
                }
                Err(e) => {
                    self.note_exchange(&exchange("lookup", "retry", e.http_status(), e.to_string()))
                        .await;
                    return Ok(Outcome::Retry(format!("the pharmacy could not be asked ({e})")));
                }
            }
        }
        if order.submit_attempts >= MAX_SUBMISSIONS {
            return Ok(fail(
                "pharmacy_unconfirmed",
                format!(
                    "{} submissions to {} went unanswered and it shows no order: check with the pharmacy",
                    order.submit_attempts, run.pharmacy_id
                ),
            ));
        }
        let request = match self.order_request(run, &order).await {
            Ok(r) => r,
            Err(outcome) => return Ok(outcome),
        };
        match self.mark_submitting(run, order.id).await {
            Ok(true) => {}
            Ok(false) => return Err(Stop),
            Err(e) => return Ok(Outcome::Retry(format!("the order could not be marked ({e})"))),
        }
        self.crash(step, FailAt::BeforeCall)?;
        let answer = adapter.submit(&request).await;
        self.crash(step, FailAt::AfterCall)?;
        match answer {
            Ok(placed) => {
                self.order_placed(
                    run,
                    &order,
                    &placed.external_id,
                    placed.http_status,
                    "accepted",
                    "submit",
                )
                .await
            }
            Err(PharmacyError::Refused { code, http_status }) => {
                let code = code_of(&code);
                self.note_exchange(&exchange("submit", "failure", http_status, format!("refused: {code}")))
                    .await;
                match self.order_status(run, order.id, "rejected", None, Some(&code)).await {
                    Ok(true) => Ok(fail(
                        "pharmacy_rejected",
                        format!("{} refused the order ({code})", run.pharmacy_id),
                    )),
                    Ok(false) => Err(Stop),
                    Err(e) => Ok(Outcome::Retry(e.to_string())),
                }
            }
            Err(e @ PharmacyError::Misconfigured(_)) => {
                // Our credentials or request were refused before anything was placed.
                self.note_exchange(&exchange("submit", "failure", 0, e.to_string()))
                    .await;
                Ok(fail("pharmacy_misconfigured", e.to_string()))
            }
            Err(e @ PharmacyError::Unavailable(_)) => {
                // Nothing was placed; the mark stays, so the next attempt still looks first (an
                // earlier attempt's order may exist).
                self.note_exchange(&exchange("submit", "retry", 0, e.to_string())).await;
                Ok(Outcome::Retry(e.to_string()))
            }
            Err(e) => {
                // The order may exist: give the pharmacy time to record it before looking.
                self.note_exchange(&exchange("submit", "retry", e.http_status(), e.to_string()))
                    .await;
                Ok(Outcome::RetryAfter(e.to_string(), self.uncertain_wait))
            }
        }
    }

    /// Appends to the sync log; a failure to log does not undo what the pharmacy did.
    async fn note_exchange(&self, e: &Exchange<'_>) {
        if let Err(err) = orders::log(&self.pool, e).await {
            tracing::warn!(error = %err, "a pharmacy exchange could not be logged");
        }
    }

    /// The run's order row, recorded once (fenced). `None` when the run was taken over.
    async fn record_order(&self, run: &Run) -> crate::error::Result<Option<Order>> {
        let Ok(mut tx) = runs::fenced(&self.pool, run.id, run.generation).await? else {
            return Ok(None);
        };
        let now = chrono::Utc::now();
        let order = orders::insert(
            &mut tx,
            &Order {
                id: Uuid::new_v4(),
                run_id: run.id,
                canvas_patient_id: run.canvas_patient_id.clone(),
                pharmacy_id: run.pharmacy_id.clone(),
                prescriber_id: run.prescriber_id.clone(),
                medication: run.medication.clone(),
                dose_label: run.dose_label.clone(),
                status: "pending".into(),
                external_order_id: String::new(),
                rejection_reason: String::new(),
                submit_started_at: None,
                submit_attempts: 0,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(order))
    }

    async fn mark_submitting(&self, run: &Run, order: Uuid) -> crate::error::Result<bool> {
        let Ok(mut tx) = runs::fenced(&self.pool, run.id, run.generation).await? else {
            return Ok(false);
        };
        // Only while this replica's lease is still good, and renewed for the call: a replica whose
        // heartbeats failed must not submit while another may be taking the run over.
        if !runs::renew_lease(&mut tx, run.id, self.lease_secs()).await? {
            return Ok(false);
        }
        orders::mark_submitting(&mut tx, order).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn order_status(
        &self,
        run: &Run,
        order: Uuid,
        status: &str,
        external: Option<&str>,
        rejection: Option<&str>,
    ) -> crate::error::Result<bool> {
        let Ok(mut tx) = runs::fenced(&self.pool, run.id, run.generation).await? else {
            return Ok(false);
        };
        orders::set_status(&mut tx, order, status, external, rejection).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn order_placed(
        &self,
        run: &mut Run,
        order: &Order,
        external: &str,
        http_status: u16,
        detail: &str,
        operation: &'static str,
    ) -> Step {
        // Logged whatever happens next: the order exists at the pharmacy.
        self.note_exchange(&Exchange::of(
            order,
            operation,
            "success",
            http_status,
            format!("{detail}: pharmacy order {external}"),
        ))
        .await;
        let mut tx = match runs::fenced(&self.pool, run.id, run.generation).await {
            Ok(Ok(tx)) => tx,
            Ok(Err(_)) => return Err(Stop),
            Err(e) => return Ok(Outcome::Retry(e.to_string())),
        };
        let saved = async {
            let kept = orders::accept(&mut tx, order.id, external).await?;
            tx.commit().await?;
            Ok::<_, crate::error::Error>(kept)
        }
        .await;
        match saved {
            Ok((status, _)) if matches!(status.as_str(), "rejected" | "cancelled") => Ok(fail(
                "pharmacy_rejected",
                format!("{} {status} the order", run.pharmacy_id),
            )),
            Ok((_, kept)) if kept != external => {
                push_once(
                    &mut run.warnings,
                    format!(
                        "pharmacy_sync: {} holds two orders for this reference; {kept} is kept, cancel {external}",
                        run.pharmacy_id
                    ),
                );
                Ok(done(format!("order {kept} accepted by {}", run.pharmacy_id)))
            }
            Ok(_) => Ok(done(format!("order {external} accepted by {}", run.pharmacy_id))),
            Err(e) => Ok(Outcome::Retry(e.to_string())),
        }
    }

    /// The order as the pharmacy takes it: the patient's details are read from Canvas now, never stored.
    async fn order_request(&self, run: &Run, order: &Order) -> Result<OrderRequest, Outcome> {
        let snapshot = self
            .snapshot()
            .await
            .map_err(|e| Outcome::Retry(format!("the catalogue could not be read ({e})")))?;
        let patient = self.patient(run).await?;
        let med = snapshot
            .medications
            .get(&run.medication)
            .ok_or_else(|| fail("medication_not_configured", "the medication left the catalogue"))?;
        let dose = med
            .doses
            .iter()
            .find(|d| d.label == run.dose_label)
            .ok_or_else(|| fail("medication_not_configured", "the dose left the catalogue"))?;
        let prescriber = snapshot
            .prescribers
            .get(&run.prescriber_id)
            .ok_or_else(|| fail("routing_failed", "the prescriber left the matrix"))?;
        let licence = snapshot
            .licence(&run.prescriber_id, &run.patient_state)
            .map(|l| l.licence_number.clone())
            .unwrap_or_default();
        let (first, last) = split_name(&prescriber.name);
        let address = patient.address.clone().unwrap_or_default();
        let (quantity, units) = split_quantity(&med.row.quantity);
        Ok(OrderRequest {
            reference_id: order.id.to_string(),
            prescriber: Prescriber {
                npi: prescriber.npi.clone(),
                first_name: first,
                last_name: last,
                license_state: run.patient_state.clone(),
                license_number: licence,
            },
            patient: Patient {
                first_name: patient.given_name.clone(),
                last_name: patient.family_name.clone(),
                date_of_birth: patient.birth_date.clone(),
                gender: match canvas::Gender::try_from(patient.gender) {
                    Ok(canvas::Gender::Male) => 'M',
                    Ok(canvas::Gender::Female) => 'F',
                    _ => 'U',
                },
                phone: patient.phone.clone(),
                email: patient.email.clone(),
            },
            ship_to: Address {
                line1: address.lines.first().cloned().unwrap_or_default(),
                line2: address.lines.get(1).cloned().unwrap_or_default(),
                city: address.city.clone(),
                state: address.state.clone(),
                zip: address.postal_code.clone(),
            },
            items: vec![Item {
                drug_name: med.row.name.clone(),
                strength: dose.strength.clone(),
                form: "injection".into(),
                quantity,
                quantity_units: units,
                days_supply: med.row.days_supply.max(0) as u32,
                refills: med.row.refills.max(0) as u32,
                directions: dose.directions.clone(),
            }],
        })
    }

    /// Captures the authorised amount once the pharmacy accepted the order.
    async fn capture(&self, run: &mut Run) -> Outcome {
        // The pharmacy may have rejected or cancelled the order since it accepted it (its callback).
        match orders::for_run(&self.pool, run.id).await {
            Ok(Some(order)) if matches!(order.status.as_str(), "rejected" | "cancelled") => {
                return fail(
                    "pharmacy_rejected",
                    format!("{} {} the order before it was paid for", run.pharmacy_id, order.status),
                );
            }
            Ok(_) => {}
            Err(e) => return Outcome::Retry(format!("the order could not be read ({e})")),
        }
        let req = self.request(payments::CaptureChargeRequest {
            charge_id: run.charge_id.clone(),
            actor: self.actor(run),
        });
        match self.payments.clone().capture_charge(req).await {
            Ok(r) => {
                let charge = r.into_inner().charge.unwrap_or_default();
                match ChargeStatus::try_from(charge.status) {
                    Ok(ChargeStatus::Succeeded) => done(format!(
                        "{} captured (charge {})",
                        cents(charge.amount_cents, &charge.currency),
                        charge.id
                    )),
                    Ok(ChargeStatus::Pending | ChargeStatus::Processing) => {
                        Outcome::Retry("the capture is still processing".into())
                    }
                    _ => fail(
                        "payment_declined",
                        format!(
                            "the capture was refused ({})",
                            nonempty(&charge.failure_code, "declined")
                        ),
                    ),
                }
            }
            Err(s) if passing(s.code()) => Outcome::Retry(format!("payments unavailable ({:?})", s.code())),
            // The authorisation is gone (released, expired): the card must be charged anew.
            Err(s) if era_kit::error::reason_of(&s).as_deref() == Some("NOT_AUTHORIZED") => {
                fail("payment_declined", "the authorisation was no longer there to capture")
            }
            // Anything else is ours to fix, not the patient's card.
            Err(s) => fail(
                "payment_failed",
                format!("payments refused the capture ({:?})", s.code()),
            ),
        }
    }

    /// Tells the patient through the outbox (which retries the vendors); a failure here is a warning.
    async fn send(
        &self,
        run: &Run,
        kind: notifications::NotificationType,
        key: &str,
        variables: &[(&str, String)],
    ) -> Outcome {
        let req = self.request(notifications::SendNotificationRequest {
            notification_type: kind as i32,
            canvas_patient_id: run.canvas_patient_id.clone(),
            variables: variables.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            reference: run.id.to_string(),
            dedupe_key: format!("run:{}:{key}", run.id),
            actor: self.actor(run),
            ..Default::default()
        });
        match self.notifications.clone().send_notification(req).await {
            Ok(r) => done(format!("queued as notification {}", r.into_inner().notification_id)),
            Err(s) => Outcome::Next {
                status: "warning",
                detail: format!(
                    "the patient could not be notified ({:?}); send it again from the outbox",
                    s.code()
                ),
            },
        }
    }

    async fn notify(&self, run: &mut Run) -> Outcome {
        if run.kind == "deny" {
            return self
                .send(
                    run,
                    notifications::NotificationType::PrescriptionDenied,
                    "notification",
                    &[],
                )
                .await;
        }
        let name = match self.snapshot().await {
            Ok(s) => s.medications.get(&run.medication).map(|m| m.row.name.clone()),
            Err(_) => None,
        };
        let medication = name.unwrap_or_else(|| run.medication.clone());
        let kind = if run.kind == "refill" {
            notifications::NotificationType::RefillOrdered
        } else {
            notifications::NotificationType::PrescriptionApproved
        };
        self.send(run, kind, "notification", &[("medication", medication)])
            .await
    }

    async fn hp_note(&self, run: &mut Run) -> Outcome {
        // The card is captured by now: nothing here may fail the run. A note that cannot be opened
        // (a key missing on this replica) leaves the default text and a warning.
        let (note, unreadable) = match self.note(run) {
            Ok(n) => (n, false),
            Err(_) => (String::new(), true),
        };
        let body = if note.is_empty() {
            format!(
                "Approved {} {} after review of the intake.",
                run.medication, run.dose_label
            )
        } else {
            note
        };
        let req = self.request(canvas::CreateHpNoteRequest {
            task_id: run.task_id.clone().unwrap_or_default(),
            canvas_patient_id: run.canvas_patient_id.clone(),
            practitioner_id: run.practitioner_id.clone(),
            title: String::new(),
            body,
            medication: run.medication.clone(),
            dose_label: run.dose_label.clone(),
            idempotency_key: format!("run:{}:hp_note", run.id),
            actor: self.actor(run),
        });
        match self.canvas.clone().create_hp_note(req).await {
            Ok(r) => {
                run.hp_note_id = r.into_inner().note.map(|n| n.id).unwrap_or_default();
                if unreadable {
                    Outcome::Next {
                        status: "warning",
                        detail: format!(
                            "H&P note {} has the default text: the approval's note could not be opened",
                            run.hp_note_id
                        ),
                    }
                } else {
                    done(format!("H&P note {}", run.hp_note_id))
                }
            }
            Err(s) if passing(s.code()) => Outcome::Retry(format!("Canvas unavailable ({:?})", s.code())),
            Err(s) => Outcome::Next {
                status: "warning",
                detail: format!("the H&P note was refused ({:?}); write it in Canvas", s.code()),
            },
        }
    }

    async fn close_task(&self, run: &mut Run, status: canvas::TaskStatus) -> Outcome {
        let note = if run.kind == "deny" {
            match self.note(run) {
                // Canvas takes at most 4000 bytes of comment.
                Ok(reason) => truncate_bytes(&format!("Denied: {reason}"), 4000),
                Err(_) => "Denied (the reason could not be opened; see the run)".to_owned(),
            }
        } else {
            format!("Approved {} {} (run {})", run.medication, run.dose_label, run.id)
        };
        let req = self.request(canvas::UpdateTaskStatusRequest {
            task_id: run.task_id.clone().unwrap_or_default(),
            status: status as i32,
            note,
            actor: self.actor(run),
        });
        match self.canvas.clone().update_task_status(req).await {
            Ok(_) => done(format!(
                "task {}",
                if run.kind == "deny" { "cancelled" } else { "completed" }
            )),
            Err(s) if passing(s.code()) => Outcome::Retry(format!("the task could not be updated ({:?})", s.code())),
            Err(s) => Outcome::Next {
                status: "warning",
                detail: format!("the task could not be updated ({:?}); close it in Canvas", s.code()),
            },
        }
    }

    /// Undoes what a failed approval did: the authorisation is released first (money is never left
    /// held because an order could not be cancelled), then the pharmacy order is cancelled where the
    /// pharmacy still allows it (unless the charge was captured: then the patient paid and the order
    /// stands), the patient is asked for a new card when the card was the cause, and a comment is
    /// left on the task for the admin who picks it up.
    async fn compensate(&self, run: &mut Run) -> Step {
        let step = COMPENSATION;
        self.crash(step, FailAt::BeforeCall)?;
        if !run.fulfils() {
            // A stop run's steps only undo; there is nothing of its own to undo.
            return Ok(done("nothing to undo"));
        }
        let captured = match self.release(run).await {
            Ok(captured) => captured,
            Err(outcome) => return Ok(outcome),
        };
        match orders::for_run(&self.pool, run.id).await {
            Ok(Some(order)) if captured => push_once(
                &mut run.warnings,
                format!("compensation: order {} was paid for and is kept", order.id),
            ),
            Ok(Some(order)) => match self.cancel_order(run, &order).await {
                Ok(Some(warning)) => push_once(&mut run.warnings, warning),
                Ok(None) => {}
                Err(outcome) => return Ok(outcome),
            },
            Ok(None) => {}
            Err(e) => return Ok(Outcome::Retry(format!("the order could not be read ({e})"))),
        }
        if run.failure_reason == "payment_declined" {
            if let Outcome::Next {
                status: "warning",
                detail,
            } = self
                .send(
                    run,
                    notifications::NotificationType::PaymentFailed,
                    "payment_failed",
                    &[],
                )
                .await
            {
                push_once(&mut run.warnings, format!("compensation: {detail}"));
            }
        }
        if let Some(task_id) = run.task_id.clone() {
            let req = self.request(canvas::AddTaskNoteRequest {
                task_id,
                text: format!(
                    "Approval run {} failed ({}); the task stays open for review.",
                    run.id, run.failure_reason
                ),
                practitioner_id: String::new(),
                idempotency_key: format!("run:{}:failure_note", run.id),
                actor: self.actor(run),
            });
            if let Err(s) = self.canvas.clone().add_task_note(req).await {
                if passing(s.code()) {
                    return Ok(Outcome::Retry(format!("Canvas unavailable ({:?})", s.code())));
                }
                push_once(
                    &mut run.warnings,
                    format!("compensation: the task comment was refused ({:?})", s.code()),
                );
            }
        }
        self.crash(step, FailAt::AfterCall)?;
        Ok(done("compensated"))
    }

    /// Releases the run's authorisation, if it holds one; `Ok(true)` when it had been captured.
    async fn release(&self, run: &mut Run) -> Result<bool, Outcome> {
        if run.charge_id.is_empty() {
            // An authorisation whose answer was lost is still found by the run's reference.
            let req = self.request(payments::GetChargeRequest {
                id: String::new(),
                reference: run.payment_reference(),
            });
            match self.payments.clone().get_charge(req).await {
                Ok(r) => run.charge_id = r.into_inner().charge.map(|c| c.id).unwrap_or_default(),
                Err(s) if s.code() == Code::NotFound => return Ok(false),
                Err(s) if passing(s.code()) => {
                    return Err(Outcome::Retry(format!("payments unavailable ({:?})", s.code())))
                }
                Err(s) => {
                    push_once(
                        &mut run.warnings,
                        format!("compensation: the run's charge could not be looked up ({:?})", s.code()),
                    );
                    return Ok(false);
                }
            }
            if run.charge_id.is_empty() {
                return Ok(false);
            }
        }
        let req = self.request(payments::CancelAuthorizationRequest {
            charge_id: run.charge_id.clone(),
            actor: self.actor(run),
        });
        match self.payments.clone().cancel_authorization(req).await {
            Ok(_) => Ok(false),
            Err(s) => match era_kit::error::reason_of(&s).as_deref() {
                // Nothing held now, unless the authorisation is still on its way (payments finishes
                // it later): then wait for it, so it can be released.
                Some("NOT_AUTHORIZED") => match self.charge_status(&run.charge_id).await {
                    Ok(Some(ChargeStatus::Pending | ChargeStatus::Processing)) => {
                        Err(Outcome::Retry("the authorisation is still being settled".into()))
                    }
                    Ok(_) => Ok(false),
                    Err(outcome) => Err(outcome),
                },
                Some("ALREADY_CAPTURED") => {
                    push_once(
                        &mut run.warnings,
                        format!("compensation: charge {} was captured; refund it from the orders view if the order is not sent", run.charge_id),
                    );
                    Ok(true)
                }
                _ if passing(s.code()) => Err(Outcome::Retry(format!("payments unavailable ({:?})", s.code()))),
                _ => {
                    push_once(
                        &mut run.warnings,
                        format!("compensation: the authorisation could not be released ({:?})", s.code()),
                    );
                    Ok(false)
                }
            },
        }
    }

    pub(super) async fn charge_status(&self, charge_id: &str) -> Result<Option<ChargeStatus>, Outcome> {
        let req = self.request(payments::GetChargeRequest {
            id: charge_id.to_owned(),
            reference: String::new(),
        });
        match self.payments.clone().get_charge(req).await {
            Ok(r) => Ok(r
                .into_inner()
                .charge
                .and_then(|c| ChargeStatus::try_from(c.status).ok())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Outcome::Retry(format!("payments unavailable ({:?})", s.code()))),
        }
    }

    /// Cancels every live order the pharmacy holds for the run: the one we know and, when a
    /// submission ever went unanswered, any it holds under our reference. `Ok(Some(warning))` names
    /// what could not be cancelled.
    pub(super) async fn cancel_order(&self, run: &Run, order: &Order) -> Result<Option<String>, Outcome> {
        let Some(adapter) = self.pharmacies.get(&order.pharmacy_id) else {
            return Ok(Some(format!("compensation: no account to cancel order {}", order.id)));
        };
        let exchange =
            |operation, status, http_status, detail| Exchange::of(order, operation, status, http_status, detail);
        let mut targets = Vec::new();
        if !order.external_order_id.is_empty() && !matches!(order.status.as_str(), "cancelled" | "rejected") {
            targets.push(order.external_order_id.clone());
        }
        if order.submit_started_at.is_some() {
            match adapter.find(&order.id.to_string()).await {
                Ok(found) => targets.extend(found.into_iter().filter(|f| f.live()).map(|f| f.external_id)),
                Err(e @ PharmacyError::Misconfigured(_)) => {
                    self.note_exchange(&exchange("lookup", "failure", 0, e.to_string()))
                        .await;
                    return Ok(Some(format!(
                        "compensation: order {} could not be looked up ({e})",
                        order.id
                    )));
                }
                Err(e) => return Err(Outcome::Retry(format!("the pharmacy could not be asked ({e})"))),
            }
        }
        targets.sort();
        targets.dedup();
        let mut warnings = Vec::new();
        for external in &targets {
            match adapter.cancel(external).await {
                Ok(()) => {
                    self.note_exchange(&exchange(
                        "cancel",
                        "success",
                        200,
                        format!("pharmacy order {external} cancelled"),
                    ))
                    .await;
                }
                Err(PharmacyError::TooLate) => {
                    self.note_exchange(&exchange(
                        "cancel",
                        "failure",
                        409,
                        format!("{external}: too late, shipped"),
                    ))
                    .await;
                    warnings.push(format!(
                        "pharmacy order {external} had shipped and could not be cancelled"
                    ));
                }
                Err(PharmacyError::NotFound) => {}
                Err(e @ (PharmacyError::Misconfigured(_) | PharmacyError::Refused { .. })) => {
                    self.note_exchange(&exchange("cancel", "failure", e.http_status(), e.to_string()))
                        .await;
                    warnings.push(format!("pharmacy order {external} could not be cancelled ({e})"));
                }
                Err(e) => {
                    self.note_exchange(&exchange("cancel", "retry", e.http_status(), e.to_string()))
                        .await;
                    return Err(Outcome::Retry(format!("the pharmacy could not cancel yet ({e})")));
                }
            }
        }
        if warnings.is_empty() && !targets.is_empty() {
            let kept = (!order.external_order_id.is_empty()).then_some(order.external_order_id.as_str());
            match self.order_status(run, order.id, "cancelled", kept, None).await {
                Ok(true) => {}
                Ok(false) => return Err(Outcome::Retry("the run was taken over".into())),
                Err(e) => return Err(Outcome::Retry(e.to_string())),
            }
        }
        Ok((!warnings.is_empty()).then(|| format!("compensation: {}", warnings.join("; "))))
    }

    async fn schedule_refills(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        run: &Run,
    ) -> crate::error::Result<()> {
        let Some(order) = sqlx::query_as::<_, Order>("select * from pharmacy_orders where run_id = $1")
            .bind(run.id)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(());
        };
        let snapshot = self.snapshot().await?;
        if let Some(med) = snapshot.medications.get(&run.medication) {
            orders::schedule_refills(tx, &order, med.row.refills, med.row.days_supply).await?;
        }
        Ok(())
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

pub(super) fn push_once(warnings: &mut Vec<String>, warning: String) {
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

fn nonempty<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// "Ali Nolan FNP-C" → ("Ali", "Nolan"): credentials after the family name are dropped.
fn split_name(name: &str) -> (String, String) {
    let mut parts = name.split_whitespace();
    let first = parts.next().unwrap_or_default().to_owned();
    let last = parts.next().unwrap_or_default().trim_end_matches(',').to_owned();
    (first, last)
}

/// "2 mL" → (2.0, "mL").
fn split_quantity(q: &str) -> (f64, String) {
    let mut parts = q.split_whitespace();
    let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1.0);
    (n, parts.collect::<Vec<_>>().join(" "))
}

fn rand_unit() -> f64 {
    // Enough jitter without a dependency: the clock's nanoseconds.
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(n % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_quantities_split_as_pharmacies_want_them() {
        assert_eq!(split_name("Ali Nolan FNP-C"), ("Ali".into(), "Nolan".into()));
        assert_eq!(split_quantity("2 mL"), (2.0, "mL".into()));
        assert_eq!(split_quantity("30 tablets"), (30.0, "tablets".into()));
        assert_eq!(cents(29_900, "usd"), "299.00 USD");
        assert_eq!(truncate_bytes("ééé", 5), "éé");
        assert_eq!(code_of("state_not_served"), "state_not_served");
        assert_eq!(code_of("Jane Doe, 1 Main St"), "unrecognised");
        assert_eq!(code_of("  "), "unrecognised");
    }
}
