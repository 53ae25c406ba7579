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
};

/// How much work one pass takes on.
const BATCH: i64 = 50;

/// Runs passes every `every` until the task is dropped; work untouched for `quiet` is resumed.
pub(crate) async fn run(app: Arc<App>, every: Duration, quiet: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = pass(&app, quiet).await {
            tracing::warn!(error = %e, "resuming unfinished payments failed; next pass retries");
        }
    }
}

/// One pass; answers how many charges and refunds it carried forward.
pub(crate) async fn pass(app: &App, quiet: Duration) -> Result<(usize, usize)> {
    let (charges, refunds) = app.store.unfinished(quiet, BATCH).await?;
    let mut done = (0, 0);
    for id in charges {
        match charge(app, id).await {
            Ok(true) => done.0 += 1,
            Ok(false) => {}
            // One charge's trouble (Stripe still down, say) does not hold back the others.
            Err(e) => tracing::info!(charge = %id, error = %e, "a charge is still unfinished"),
        }
    }
    for id in refunds {
        match refund(app, id).await {
            Ok(true) => done.1 += 1,
            Ok(false) => {}
            Err(e) => tracing::info!(refund = %id, error = %e, "a refund is still unfinished"),
        }
    }
    if done != (0, 0) {
        tracing::info!(charges = done.0, refunds = done.1, "resumed unfinished payments");
    }
    Ok(done)
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
