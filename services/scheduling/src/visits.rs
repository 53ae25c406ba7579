//! After the visit: booked appointments that have begun are read back from Canvas, where the
//! practitioner marks them fulfilled (exited) or no-show, so the lists show completed and missed
//! visits. Every replica may run it: settling is a conditional update, the same either way.

use era_proto::canvas::v1 as canvas;

use crate::{app::Shared, error::Result};

/// Appointments read per round.
const BATCH: i64 = 50;
/// A visit Canvas has not settled this long after it began is left booked and no longer read.
const GIVE_UP_DAYS: i64 = 30;

/// Runs until dropped.
pub(crate) async fn run(app: Shared, every: std::time::Duration) {
    loop {
        if let Err(e) = settle_begun(&app).await {
            tracing::warn!(error = %e, "reading visit outcomes from canvas failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// One round: each begun visit whose Canvas status says how it went takes that status.
pub(crate) async fn settle_begun(app: &Shared) -> Result<usize> {
    let mut settled = 0;
    for a in app.store.begun(BATCH, chrono::Duration::days(GIVE_UP_DAYS)).await? {
        let Some(canvas_id) = &a.canvas_appointment_id else {
            continue;
        };
        let read = app
            .canvas
            .clone()
            .get_appointment(app.request(canvas::GetAppointmentRequest { id: canvas_id.clone() }))
            .await;
        let status = match read.map(|r| r.into_inner().appointment.map(|c| c.status)) {
            Ok(Some(s)) => canvas::AppointmentStatus::try_from(s).unwrap_or_default(),
            Ok(None) => continue,
            Err(e) => {
                tracing::info!(appointment = %a.id, code = ?e.code(), "canvas did not answer for a visit; next round");
                continue;
            }
        };
        let outcome = match status {
            canvas::AppointmentStatus::Fulfilled => "completed",
            canvas::AppointmentStatus::Noshow => "no_show",
            // Cancelled in Canvas by staff: cancelled here too, and the job tidies the meeting
            // and the reminder and tells the patient.
            canvas::AppointmentStatus::Cancelled => "cancelled",
            _ => continue,
        };
        if app.store.settle(a.id, outcome).await? {
            if outcome == "cancelled" {
                let mut conn = app.store.pool().acquire().await?;
                app.queue.request(&mut conn, "appointment", &a.job_key(), None).await?;
                app.queue.wake();
            }
            tracing::info!(appointment = %a.id, outcome, "visit settled from canvas");
            settled += 1;
        }
    }
    Ok(settled)
}
