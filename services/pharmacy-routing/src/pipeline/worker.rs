//! Each replica's worker and clock. The worker takes runs that are due and whose lease is free or
//! ran out (a replica crashed, or a step was put back for later) and drives them, one at a time.
//! `FOR UPDATE SKIP LOCKED` and the generation bump make two replicas never hold the same run at
//! once. The clock advances refills and tracks shipments.

use std::sync::Arc;

use super::{runs, Pipeline};

pub(crate) async fn run(pipeline: Arc<Pipeline>) {
    loop {
        if pipeline.halted() {
            return;
        }
        match runs::claim(&pipeline.pool, pipeline.owner, pipeline.lease_secs()).await {
            Ok(Some(run)) => {
                tracing::info!(run = %run.id, phase = %run.phase, "resuming a run");
                pipeline.clone().drive(run).await;
            }
            Ok(None) => tokio::time::sleep(pipeline.poll).await,
            Err(e) => {
                tracing::warn!(error = %e, "the pipeline worker could not claim a run");
                tokio::time::sleep(pipeline.poll).await;
            }
        }
    }
}

/// Each replica's clock: refill reminders, refills that came due, overdue notices, and FedEx
/// tracking of the shipments not yet delivered.
pub(crate) async fn run_clock(pipeline: Arc<Pipeline>) {
    loop {
        if pipeline.halted() {
            return;
        }
        if let Err(e) = pipeline.refill_tick().await {
            tracing::warn!(error = %e, "the refill clock could not run");
        }
        if let Err(e) = pipeline.tracking_tick().await {
            tracing::warn!(error = %e, "shipments could not be tracked");
        }
        tokio::time::sleep(pipeline.poll).await;
    }
}
