//! A stop run's steps: a prescription stopped in Canvas undoes its fulfilment. The fulfilment run is
//! asked to stop first (a live one undoes, at its next step, what it did before the charge was
//! captured); then the pharmacy order is cancelled where the pharmacy still allows it, a hold still
//! there is released, a captured charge is listed for an admin to refund (refunds are a person's
//! decision), and the refills still to come are cancelled. No step fails the stop: what cannot be
//! undone is a warning on the run.

use era_proto::payments::v1::{self as payments, ChargeStatus};
use uuid::Uuid;

use super::{
    orders, refills,
    runs::{self, Run},
    steps::{cents, done, passing, Outcome},
    Pipeline,
};

impl Pipeline {
    /// The fulfilment run this stop undoes, as it stands now.
    async fn target(&self, run: &Run) -> Result<Run, Outcome> {
        let Some(id) = run.target_run_id else {
            return Err(done("no fulfilment run to stop"));
        };
        match runs::get(&self.pool, id).await {
            Ok(Some(target)) => Ok(target),
            Ok(None) => Err(done("no fulfilment run to stop")),
            Err(e) => Err(Outcome::Retry(format!("the fulfilment run could not be read ({e})"))),
        }
    }

    pub(super) async fn halt_fulfilment(&self, run: &mut Run) -> Outcome {
        let target = match self.target(run).await {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        match runs::request_stop(&self.pool, target.id).await {
            // Its driver stops at its next step and undoes what it did; this run waits for that.
            Ok(true) => Outcome::Retry(format!("waiting for fulfilment run {} to stop", target.id)),
            Ok(false) => done(format!("fulfilment run {} ended {}", target.id, target.status)),
            Err(e) => Outcome::Retry(format!("the fulfilment run could not be stopped ({e})")),
        }
    }

    pub(super) async fn cancel_stopped_order(&self, run: &mut Run) -> Outcome {
        let target = match self.target(run).await {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        let order = match orders::for_run(&self.pool, target.id).await {
            Ok(Some(order)) => order,
            Ok(None) => return done("nothing was ordered"),
            Err(e) => return Outcome::Retry(format!("the order could not be read ({e})")),
        };
        match order.status.as_str() {
            "cancelled" | "rejected" => return done(format!("order {} was already {}", order.id, order.status)),
            "shipped" | "delivered" => {
                return Outcome::Next {
                    status: "warning",
                    detail: format!("order {} had {} and cannot be cancelled", order.id, order.status),
                }
            }
            _ => {}
        }
        if order.external_order_id.is_empty() && order.submit_started_at.is_none() {
            // Recorded but never sent: nothing to ask the pharmacy.
            return match self.order_status(run, order.id, "cancelled", None, None).await {
                Ok(true) => done(format!("order {} cancelled before it was sent", order.id)),
                Ok(false) => Outcome::Retry("the run was taken over".into()),
                Err(e) => Outcome::Retry(e.to_string()),
            };
        }
        match self.cancel_order(run, &order).await {
            Ok(None) => {
                // Cancelled there, or the pharmacy holds nothing live under our reference (a
                // submission that never arrived): either way ours is cancelled too.
                match self.order_status(run, order.id, "cancelled", None, None).await {
                    Ok(true) => done(format!("order {} cancelled at {}", order.id, order.pharmacy_id)),
                    Ok(false) => Outcome::Retry("the run was taken over".into()),
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
            Ok(Some(warning)) => Outcome::Next {
                status: "warning",
                detail: warning,
            },
            Err(outcome) => outcome,
        }
    }

    pub(super) async fn review_payment(&self, run: &mut Run) -> Outcome {
        let target = match self.target(run).await {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        if target.charge_id.is_empty() {
            return done("nothing was charged");
        }
        let charge = match self.charge_status(&target.charge_id).await {
            Ok(status) => status,
            Err(outcome) => return outcome,
        };
        match charge {
            Some(ChargeStatus::Succeeded) => match self.list_refund(run, &target).await {
                Ok(()) => done(format!(
                    "{} captured (charge {}): listed for an admin's refund",
                    cents(target.amount_cents, &target.currency),
                    target.charge_id
                )),
                Err(e) => Outcome::Retry(format!("the refund review could not be recorded ({e})")),
            },
            Some(ChargeStatus::Authorized) => {
                let req = self.request(payments::CancelAuthorizationRequest {
                    charge_id: target.charge_id.clone(),
                    actor: self.actor(run),
                });
                match self.payments.clone().cancel_authorization(req).await {
                    Ok(_) => done(format!("hold {} released", target.charge_id)),
                    Err(s) if passing(s.code()) => Outcome::Retry(format!("payments unavailable ({:?})", s.code())),
                    // Captured or released meanwhile: the next attempt reads it again.
                    Err(s) => Outcome::Retry(format!("the hold could not be released ({:?})", s.code())),
                }
            }
            Some(ChargeStatus::Pending | ChargeStatus::Processing) => {
                Outcome::Retry("the charge is still being settled".into())
            }
            other => done(format!(
                "charge {} is {}: nothing to refund",
                target.charge_id,
                other.map_or("unknown", |s| s.as_str_name())
            )),
        }
    }

    /// Lists the captured charge for review, once per stop (fenced: a replica that lost the run
    /// writes nothing).
    async fn list_refund(&self, run: &Run, target: &Run) -> crate::error::Result<()> {
        let order = orders::for_run(&self.pool, target.id).await?;
        let Ok(mut tx) = runs::fenced(&self.pool, run.id, run.generation).await? else {
            return Ok(());
        };
        sqlx::query(
            "insert into refund_reviews (id, stop_run_id, fulfilment_run_id, canvas_patient_id, medication_request_id,
                 charge_id, amount_cents, currency, order_outcome)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (stop_run_id) do nothing",
        )
        .bind(Uuid::new_v4())
        .bind(run.id)
        .bind(target.id)
        .bind(&run.canvas_patient_id)
        .bind(run.medication_request_id.as_deref().unwrap_or_default())
        .bind(&target.charge_id)
        .bind(target.amount_cents)
        .bind(&target.currency)
        .bind(order.map_or_else(|| "none".to_owned(), |o| o.status))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cancels the refills still to come; one under way is stopped like any fulfilment run (it
    /// undoes what it did before its capture, and its end cancels the refill).
    pub(super) async fn cancel_refills(&self, run: &mut Run) -> Outcome {
        let Some(target) = run.target_run_id else {
            return done("no refills");
        };
        let cancelled = async {
            let Ok(mut tx) = runs::fenced(&self.pool, run.id, run.generation).await? else {
                return Ok(None);
            };
            let cancelled = sqlx::query(
                "update refills set status = 'cancelled', updated_at = now()
                 where order_id in (select id from pharmacy_orders where run_id = $1) and status = any($2)",
            )
            .bind(target)
            .bind(refills::OPEN)
            .execute(&mut *tx)
            .await?;
            let stopped = sqlx::query(
                "update orchestration_runs set stop_requested_at = coalesce(stop_requested_at, now())
                 where kind = 'refill' and status in ('pending', 'running') and refill_id in (
                     select r.id from refills r join pharmacy_orders o on o.id = r.order_id
                     where o.run_id = $1 and r.status = 'due')",
            )
            .bind(target)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, crate::error::Error>(Some((cancelled.rows_affected(), stopped.rows_affected())))
        }
        .await;
        match cancelled {
            Ok(Some((0, 0))) => done("no refills to come"),
            Ok(Some((n, 0))) => done(format!("{n} refills cancelled")),
            Ok(Some((n, m))) => done(format!("{n} refills cancelled; {m} under way asked to stop")),
            Ok(None) => Outcome::Retry("the run was taken over".into()),
            Err(e) => Outcome::Retry(format!("the refills could not be cancelled ({e})")),
        }
    }
}
