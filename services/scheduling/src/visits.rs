//! Visits read back from Canvas: after the visit the practitioner marks it fulfilled (exited) or
//! no-show, so the lists show completed and missed visits; before it, staff may cancel it there.
//! Every replica may run it: each round claims its visits, and settling is a conditional update.

use era_proto::canvas::v1 as canvas;

use crate::{app::Shared, error::Result};

/// Appointments read per round.
const BATCH: i64 = 50;
/// A visit Canvas has not settled this long after it began is left booked and no longer read.
const GIVE_UP_DAYS: i64 = 30;

/// Runs until dropped.
pub(crate) async fn run(app: Shared, every: std::time::Duration) {
    loop {
        if let Err(e) = settle_visits(&app).await {
            tracing::warn!(error = %e, "reading visit outcomes from canvas failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// One round: each booked visit whose Canvas status says how it went (or that it was cancelled
/// there) takes that status.
pub(crate) async fn settle_visits(app: &Shared) -> Result<usize> {
    let mut settled = 0;
    for a in app.store.to_check(BATCH, chrono::Duration::days(GIVE_UP_DAYS)).await? {
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
        let begun = a.start_time <= chrono::Utc::now();
        let outcome = match status {
            canvas::AppointmentStatus::Fulfilled if begun => "completed",
            canvas::AppointmentStatus::Noshow if begun => "no_show",
            // Cancelled in Canvas by staff: cancelled here too, and the job tidies the meeting
            // and the reminder and tells the patient.
            canvas::AppointmentStatus::Cancelled => "cancelled",
            _ => continue,
        };
        if app.store.settle(&app.queue, a.id, outcome).await? {
            app.queue.wake();
            tracing::info!(appointment = %a.id, outcome, "visit settled from canvas");
            settled += 1;
        }
    }
    Ok(settled)
}
