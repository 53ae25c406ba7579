//! The patient portal's notifications: listed newest first with the unread count, marked read.

use era_proto::notifications::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::{
    app::App,
    error::{Error, Result},
    outbox::parse_id,
    store::PortalRow,
    templates::Kind,
};

/// What a portal notification says, sealed in its row.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PortalText {
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) link: String,
}

/// The clear columns bound into a portal notification's seal.
pub(crate) fn context(patient: &str, kind: Kind) -> Vec<u8> {
    format!("portal|{patient}|{}", kind.code()).into_bytes()
}

fn notification_pb(app: &App, r: &PortalRow) -> Result<pb::PatientNotification> {
    let plain = app.keys.open(r.id, &context(&r.patient, r.kind), &r.sealed)?;
    let text: PortalText = serde_json::from_slice(&plain).map_err(|_| Error::Integrity)?;
    Ok(pb::PatientNotification {
        id: r.id.to_string(),
        canvas_patient_id: r.patient.clone(),
        notification_type: r.kind.to_pb() as i32,
        title: text.title,
        body: text.body,
        link: text.link,
        reference: r.reference.clone(),
        read: r.read_at.is_some(),
        read_at: r.read_at.map(era_kit::time::timestamp),
        created_at: Some(era_kit::time::timestamp(r.created_at)),
    })
}

pub(crate) async fn list(
    app: &App,
    req: &pb::ListPatientNotificationsRequest,
) -> Result<pb::ListPatientNotificationsResponse> {
    if req.canvas_patient_id.is_empty() {
        return Err(Error::field("canvas_patient_id", "is required"));
    }
    let page = req.page.clone().unwrap_or_default();
    let before = era_kit::time::page_cursor(&page.page_token).map_err(|v| Error::InvalidArgument(vec![v]))?;
    let size = era_kit::time::page_size(page.page_size);
    let (mut rows, unread) = app
        .store
        .portal(&req.canvas_patient_id, req.unread_only, before, size + 1)
        .await?;
    let next = if rows.len() as i64 > size {
        rows.truncate(size as usize);
        rows.last().map(|r| (r.created_at, r.id))
    } else {
        None
    };
    Ok(pb::ListPatientNotificationsResponse {
        notifications: rows.iter().map(|r| notification_pb(app, r)).collect::<Result<_>>()?,
        unread_count: i32::try_from(unread).unwrap_or(i32::MAX),
        page: Some(era_kit::time::next_page(next)),
    })
}

pub(crate) async fn mark_read(
    app: &App,
    req: &pb::MarkNotificationReadRequest,
) -> Result<pb::MarkNotificationReadResponse> {
    let id = parse_id("notification_id", &req.notification_id)?;
    let row = app
        .store
        .mark_read(&req.canvas_patient_id, id)
        .await?
        .ok_or_else(|| Error::not_found("notification", id.to_string()))?;
    Ok(pb::MarkNotificationReadResponse {
        notification: Some(notification_pb(app, &row)?),
    })
}
