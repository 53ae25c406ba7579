//! Finishes charges and refunds nobody is finishing: the caller crashed, gave up after Stripe was
//! unreachable, or lost its answer and never came back, and no webhook settled it.
//!
//! Each piece of work is taken with the same per-key lock a caller takes, without waiting: a
//! transaction-scoped advisory lock is the lease (it lives exactly as long as the holder's
//! connection, so a crashed replica's lease ends with it and there is no heartbeat to miss), and the
//! lock's connection is checked right before Stripe is called, which fences a holder that lost it.
//! Work already held by a caller or another replica is skipped, so any number of replicas may run
//! this loop. Stripe is only ever sent the key recorded with the work, so resuming cannot double
//! anything.

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use crate::{
    app::App,
    charges::{carry_out_charge, carry_out_refund, is_final, refund_is_final},
    error::Result,
    store::Postponed,
};

/// How much work one pass takes on.
const BATCH: i64 = 50;

/// Runs passes every `every` until the task is dropped; work untouched for `quiet` is resumed. Each
/// pass runs as its own task, so a panic in one is logged and the next pass still comes.
pub(crate) async fn run(app: Arc<App>, every: Duration, quiet: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut for_operator = 0;
    loop {
        tick.tick().await;
        let app = app.clone();
        match tokio::spawn(async move { pass(&app, quiet).await }).await {
            Ok(Ok(report)) => {
                // Said when it changes, not every pass.
                if report.for_operator != for_operator && report.for_operator > 0 {
                    tracing::warn!(
                        count = report.for_operator,
                        "charges or refunds unfinished for over a day and never acknowledged by Stripe: check \
                         Stripe, then settle them by hand (sending them again could pay twice)"
                    );
                }
                for_operator = report.for_operator;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "resuming unfinished payments failed; next pass retries"),
            Err(e) => tracing::error!(error = %e, "a resume pass panicked; next pass retries"),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Charges and refunds sent to (or read back from) Stripe and recorded.
    pub(crate) charges: usize,
    pub(crate) refunds: usize,
    /// See [`crate::store::Unfinished::for_operator`].
    pub(crate) for_operator: i64,
}

/// One pass over the unfinished work.
pub(crate) async fn pass(app: &App, quiet: Duration) -> Result<Report> {
    let found = app.store.unfinished(quiet, BATCH).await?;
    let mut report = Report {
        for_operator: found.for_operator,
        ..Default::default()
    };
    for id in found.charges {
        match charge(app, id).await {
            Ok(true) => report.charges += 1,
            Ok(false) => {}
            // One charge's trouble (Stripe still down, say) does not hold back the others: it goes
            // to the back of the queue.
            Err(e) => {
                tracing::info!(charge = %id, error = %e, "a charge is still unfinished");
                app.store.postpone(Postponed::Charge, id).await?;
            }
        }
    }
    for id in found.refunds {
        match refund(app, id).await {
            Ok(true) => report.refunds += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::info!(refund = %id, error = %e, "a refund is still unfinished");
                app.store.postpone(Postponed::Refund, id).await?;
            }
        }
    }
    if report.charges + report.refunds > 0 {
        tracing::info!(
            charges = report.charges,
            refunds = report.refunds,
            "carried unfinished payments forward"
        );
    }
    Ok(report)
}

async fn charge(app: &App, id: Uuid) -> Result<bool> {
    let Some(row) = app.store.charge_by_id(id).await? else {
        return Ok(false);
    };
    let Some(mut lock) = app.store.try_lock(&format!("charge:{}", row.charge.reference)).await? else {
        return Ok(false);
    };
    // Read again under the lock: the holder we waited out may have finished it.
    let Some(row) = app.store.charge_by_id(id).await?.filter(|r| !is_final(r.charge.status)) else {
        return Ok(false);
    };
    carry_out_charge(app, &mut lock, &row).await?;
    Ok(true)
}

async fn refund(app: &App, id: Uuid) -> Result<bool> {
    let Some(row) = app.store.refund_by_id(id).await? else {
        return Ok(false);
    };
    let charge_id: Uuid = row
        .refund
        .charge_id
        .parse()
        .map_err(|_| crate::Error::Internal(anyhow::anyhow!("refund {id} has no charge")))?;
    let Some(mut lock) = app.store.try_lock(&format!("refund:{charge_id}")).await? else {
        return Ok(false);
    };
    let Some(row) = app
        .store
        .refund_by_id(id)
        .await?
        .filter(|r| !refund_is_final(r.refund.status))
    else {
        return Ok(false);
    };
    let Some(charge) = app.store.charge_by_id(charge_id).await? else {
        return Ok(false);
    };
    carry_out_refund(app, &mut lock, &charge, &row).await?;
    Ok(true)
}
