//! Patient-practitioner messages, schedules, slots and appointments: thin, validated passes to
//! Canvas, with creates made idempotent by key.

use chrono::{Duration, NaiveDate, Utc};
use era_kit::error::FieldViolation;
use era_proto::{canvas::v1 as pb, common::v1::PageResponse};
use serde_json::{json, Value};

use crate::{
    app::{offset_from_token, offset_token, page_size, App},
    convert,
    error::{Error, Result},
    fhir::{model, FhirError},
    queue::{check_id, read_or_not_found},
    store::WriteState,
};

pub(crate) async fn list_communications(
    app: &App,
    req: &pb::ListCommunicationsRequest,
) -> Result<pb::ListCommunicationsResponse> {
    check_id("canvas_patient_id", &req.canvas_patient_id)?;
    let page = req.page.clone().unwrap_or_default();
    let size = page_size(page.page_size, 50);
    let offset = offset_from_token(&page.page_token)?;
    let params = vec![
        ("patient", format!("Patient/{}", req.canvas_patient_id)),
        ("_count", size.to_string()),
        ("_offset", offset.to_string()),
    ];
    let found = app
        .fhir
        .search::<model::Communication>("Communication", &params)
        .await?;
    let mut items: Vec<_> = found.items.iter().map(convert::communication).collect();
    if !req.practitioner_id.is_empty() {
        items.retain(|c| c.practitioner_id == req.practitioner_id);
    }
    crate::queue::newest_first(&mut items, |c| c.sent_at);
    Ok(pb::ListCommunicationsResponse {
        communications: items,
        page: Some(PageResponse {
            next_page_token: found
                .next
                .map(|_| offset_token(offset.saturating_add(size as u32)))
                .unwrap_or_default(),
        }),
    })
}

pub(crate) async fn create_communication(
    app: &App,
    caller: &era_kit::auth::Caller,
    req: &pb::CreateCommunicationRequest,
) -> Result<pb::CreateCommunicationResponse> {
    let mut bad = Vec::new();
    for (field, value) in [
        ("canvas_patient_id", &req.canvas_patient_id),
        ("practitioner_id", &req.practitioner_id),
    ] {
        if check_id(field, value).is_err() {
            bad.push(FieldViolation::new(field, "is required and must be a Canvas id"));
        }
    }
    let direction = pb::CommunicationDirection::try_from(req.direction).unwrap_or_default();
    if direction == pb::CommunicationDirection::Unspecified {
        bad.push(FieldViolation::new("direction", "is required"));
    }
    if req.body.trim().is_empty() || req.body.len() > 10_000 {
        bad.push(FieldViolation::new("body", "is required (at most 10000 characters)"));
    }
    if !crate::patients::valid_key(&req.idempotency_key) {
        bad.push(FieldViolation::new("idempotency_key", crate::patients::KEY_RULE));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    if caller.role == era_kit::auth::Role::Patient
        && !care_team(app, &req.canvas_patient_id)
            .await?
            .contains(&req.practitioner_id)
    {
        return Err(Error::Forbidden(
            "a patient may write only to a practitioner who cares for them",
        ));
    }
    let patient = json!({ "reference": format!("Patient/{}", req.canvas_patient_id) });
    let practitioner = json!({ "reference": format!("Practitioner/{}", req.practitioner_id) });
    let (sender, recipient) = match direction {
        pb::CommunicationDirection::PatientToPractitioner => (patient, practitioner),
        _ => (practitioner, patient),
    };
    let resource = json!({
        "resourceType": "Communication",
        "status": "completed",
        "sender": sender,
        "recipient": [recipient],
        "payload": [{ "contentString": req.body }],
    });
    let sender = resource["sender"]["reference"].as_str().unwrap_or_default().to_owned();
    let patient_id = req.canvas_patient_id.clone();
    let body = req.body.clone();
    // Keys are the caller's own: one caller cannot occupy another's.
    let key = format!("{}:{}", caller.subject, req.idempotency_key);
    let id = idempotent_create(app, "communication", &key, &resource, |started_at| async move {
        // An interrupted attempt's message has this sender and text, and was sent after it started.
        let params = [
            ("patient", format!("Patient/{patient_id}")),
            ("_count", "100".to_owned()),
        ];
        let found = app
            .fhir
            .search_all::<model::Communication>("Communication", &params, 1000)
            .await?;
        let since = (started_at - Duration::minutes(1)).timestamp();
        Ok(found
            .into_iter()
            .find(|c| {
                c.sender.as_ref().and_then(|s| s.reference.as_deref()) == Some(sender.as_str())
                    && c.payload
                        .iter()
                        .any(|p| p.content_string.as_deref() == Some(body.as_str()))
                    && convert::parse_time(c.sent.as_deref()).is_some_and(|t| t.seconds >= since)
            })
            .map(|c| c.id))
    })
    .await?;
    let c: model::Communication = app.fhir.read("Communication", &id.0).await?;
    Ok(pb::CreateCommunicationResponse {
        communication: Some(convert::communication(&c)),
        existing: id.1,
    })
}

/// The practitioners who care for a patient: those their tasks are assigned to or were requested
/// by, and those who prescribed for them.
async fn care_team(app: &App, patient_id: &str) -> Result<std::collections::HashSet<String>> {
    let by_patient = [
        ("patient", format!("Patient/{patient_id}")),
        ("_count", "100".to_owned()),
    ];
    let (tasks, prescriptions) = tokio::try_join!(
        app.fhir.search_all::<model::Task>("Task", &by_patient, 500),
        app.fhir
            .search_all::<model::MedicationRequest>("MedicationRequest", &by_patient, 500),
    )?;
    let refs = tasks
        .iter()
        .flat_map(|t| [t.owner.as_ref(), t.requester.as_ref()])
        .chain(prescriptions.iter().map(|m| m.requester.as_ref()))
        .flatten();
    Ok(refs
        .filter_map(|r| r.id_of("Practitioner").map(str::to_owned))
        .collect())
}

/// Creates `resource` once per key. `recover` looks for what an interrupted attempt may have
/// created; when it cannot tell, the write fails rather than risk a duplicate.
async fn idempotent_create<F, Fut>(
    app: &App,
    kind: &'static str,
    key: &str,
    resource: &Value,
    recover: F,
) -> Result<(String, bool)>
where
    F: FnOnce(chrono::DateTime<Utc>) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>>>,
{
    let ty = resource["resourceType"].as_str().unwrap_or_default().to_owned();
    let key = format!("{kind}:{key}");
    let mac = app.store.fingerprint(kind, resource.to_string().as_bytes());
    let mut lock = app.store.lock_key(&key).await?;
    match app.store.begin_write(&key, kind, &mac).await? {
        WriteState::Done { resource_id, .. } => return Ok((resource_id, true)),
        WriteState::Unfinished { started_at } => match recover(started_at).await? {
            Some(id) => {
                app.store.finish_write(&key, &id, &json!({})).await?;
                return Ok((id, true));
            }
            None => {
                return Err(Error::Precondition(
                    "WRITE_OUTCOME_UNKNOWN",
                    format!("an earlier attempt with this key may have created the {kind}; check Canvas before retrying with a new key"),
                ))
            }
        },
        WriteState::New => {}
    }
    lock.check().await?;
    let id = app.guarded(&key, app.fhir.create(&ty, resource)).await?;
    app.store.finish_write(&key, &id, &json!({})).await?;
    Ok((id, false))
}

pub(crate) async fn list_schedules(app: &App, req: &pb::ListSchedulesRequest) -> Result<pb::ListSchedulesResponse> {
    if !req.practitioner_id.is_empty() {
        check_id("practitioner_id", &req.practitioner_id)?;
    }
    let found = app
        .fhir
        .search_all::<model::Schedule>("Schedule", &[("_count", "100".to_owned())], 1000)
        .await?;
    let schedules = found
        .iter()
        .map(convert::schedule)
        .filter(|s| req.practitioner_id.is_empty() || s.practitioner_id == req.practitioner_id)
        .collect();
    Ok(pb::ListSchedulesResponse { schedules })
}

pub(crate) async fn list_slots(app: &App, req: &pb::ListSlotsRequest) -> Result<pb::ListSlotsResponse> {
    let mut bad = Vec::new();
    if check_id("schedule_id", &req.schedule_id).is_err() {
        bad.push(FieldViolation::new(
            "schedule_id",
            "is required and must be a Canvas schedule id",
        ));
    }
    let date = |field: &str, s: &str, bad: &mut Vec<FieldViolation>| {
        if s.is_empty() {
            return None;
        }
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        if d.is_none() {
            bad.push(FieldViolation::new(field, "must be written YYYY-MM-DD"));
        }
        d
    };
    let start = date("start_date", &req.start_date, &mut bad).unwrap_or_else(|| Utc::now().date_naive());
    let end = date("end_date", &req.end_date, &mut bad).unwrap_or(start + Duration::days(7));
    if end < start || end - start > Duration::days(62) {
        bad.push(FieldViolation::new(
            "end_date",
            "must be after start_date and within 62 days of it",
        ));
    }
    if !(0..=480).contains(&req.duration_minutes) {
        bad.push(FieldViolation::new("duration_minutes", "must be between 1 and 480"));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let mut params = vec![
        ("schedule", req.schedule_id.clone()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    if req.duration_minutes > 0 {
        params.push(("duration", req.duration_minutes.to_string()));
    }
    if !req.appointment_type.is_empty() {
        params.push(("appointment-type", req.appointment_type.clone()));
    }
    let found = app.fhir.search_all::<model::Slot>("Slot", &params, 5000).await?;
    let practitioner = req.schedule_id.split("-Staff.").nth(1).unwrap_or_default().to_owned();
    Ok(pb::ListSlotsResponse {
        slots: found
            .iter()
            .map(|s| pb::Slot {
                schedule_id: s.schedule.id_of("Schedule").unwrap_or(&req.schedule_id).to_owned(),
                practitioner_id: practitioner.clone(),
                start_time: convert::parse_time(s.start.as_deref()),
                end_time: convert::parse_time(s.end.as_deref()),
            })
            .collect(),
    })
}

fn appointment_times(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
    bad: &mut Vec<FieldViolation>,
    required: bool,
) -> Option<(String, String)> {
    match (start.and_then(convert::rfc3339), end.and_then(convert::rfc3339)) {
        (Some(s), Some(e)) => {
            if e <= s {
                bad.push(FieldViolation::new("end_time", "must be after start_time"));
            }
            Some((s, e))
        }
        (None, None) if !required => None,
        _ => {
            bad.push(FieldViolation::new(
                "start_time",
                "start_time and end_time are required together",
            ));
            None
        }
    }
}

fn meeting(url: &str, bad: &mut Vec<FieldViolation>) {
    let acceptable = url.is_empty() || (url.starts_with("https://") && url.len() <= 2000);
    if !acceptable {
        bad.push(FieldViolation::new("meeting_url", "must be an https:// URL"));
    }
}

pub(crate) async fn create_appointment(
    app: &App,
    req: &pb::CreateAppointmentRequest,
) -> Result<pb::CreateAppointmentResponse> {
    let mut bad = Vec::new();
    for (field, value) in [
        ("canvas_patient_id", &req.canvas_patient_id),
        ("practitioner_id", &req.practitioner_id),
        ("location_id", &req.location_id),
    ] {
        if check_id(field, value).is_err() {
            bad.push(FieldViolation::new(field, "is required and must be a Canvas id"));
        }
    }
    let times = appointment_times(req.start_time.as_ref(), req.end_time.as_ref(), &mut bad, true);
    meeting(&req.meeting_url, &mut bad);
    if !crate::patients::valid_key(&req.idempotency_key) {
        bad.push(FieldViolation::new("idempotency_key", crate::patients::KEY_RULE));
    }
    if req.reason.len() > 500 || req.description.len() > 2000 {
        bad.push(FieldViolation::new("reason", "reason or description too long"));
    }
    let appointment_type = if req.appointment_type.is_empty() {
        None
    } else {
        match req.appointment_type.split_once('|') {
            Some((system, code)) if !code.is_empty() => Some(json!({ "coding": [{ "system": system, "code": code }] })),
            _ => {
                bad.push(FieldViolation::new("appointment_type", "must be written system|code"));
                None
            }
        }
    };
    let Some((start, end)) = times.filter(|_| bad.is_empty()) else {
        return Err(Error::InvalidArgument(bad));
    };
    let mut resource = json!({
        "resourceType": "Appointment",
        "status": "booked",
        "start": start,
        "end": end,
        "supportingInformation": [{ "reference": format!("Location/{}", req.location_id) }],
        "participant": [
            { "actor": { "reference": format!("Practitioner/{}", req.practitioner_id) }, "status": "accepted" },
            { "actor": { "reference": format!("Patient/{}", req.canvas_patient_id) }, "status": "accepted" },
        ],
    });
    if !req.meeting_url.is_empty() {
        resource["contained"] =
            json!([{ "resourceType": "Endpoint", "id": "appointment-meeting-endpoint-0", "address": req.meeting_url }]);
        if let Some(info) = resource["supportingInformation"].as_array_mut() {
            info.push(json!({ "reference": "#appointment-meeting-endpoint-0", "type": "Endpoint" }));
        }
    }
    if let Some(t) = appointment_type {
        resource["appointmentType"] = t;
    }
    if !req.reason.is_empty() {
        resource["reasonCode"] = json!([{ "text": req.reason }]);
    }
    if !req.description.is_empty() {
        resource["description"] = json!(req.description);
    }
    let patient = req.canvas_patient_id.clone();
    let practitioner = req.practitioner_id.clone();
    let start_for_recovery = start.clone();
    let created = idempotent_create(
        app,
        "appointment",
        &req.idempotency_key,
        &resource,
        |_started| async move {
            // An interrupted attempt's appointment has this patient, practitioner and start.
            let params = [
                ("patient", format!("Patient/{patient}")),
                ("practitioner", format!("Practitioner/{practitioner}")),
                ("_count", "100".to_owned()),
            ];
            let found = app
                .fhir
                .search_all::<model::Appointment>("Appointment", &params, 500)
                .await?;
            Ok(found
                .into_iter()
                .find(|a| {
                    a.status != "cancelled"
                        && convert::parse_time(a.start.as_deref()) == convert::parse_time(Some(&start_for_recovery))
                })
                .map(|a| a.id))
        },
    )
    .await
    .map_err(slot_taken)?;
    let a: model::Appointment = app.fhir.read("Appointment", &created.0).await?;
    Ok(pb::CreateAppointmentResponse {
        appointment: Some(convert::appointment(&a)),
        existing: created.1,
    })
}

/// Canvas's 422 for a taken time becomes SLOT_UNAVAILABLE.
fn slot_taken(e: Error) -> Error {
    match e {
        Error::Canvas(FhirError::Rejected {
            status: 422, ref text, ..
        }) if text.contains("no longer available") => Error::Precondition(
            "SLOT_UNAVAILABLE",
            "this appointment time is no longer available".into(),
        ),
        other => other,
    }
}

pub(crate) async fn get_appointment(app: &App, id: &str) -> Result<pb::Appointment> {
    check_id("id", id)?;
    let a: model::Appointment = read_or_not_found(app, "Appointment", id, "appointment").await?;
    Ok(convert::appointment(&a))
}

pub(crate) async fn update_appointment(app: &App, req: &pb::UpdateAppointmentRequest) -> Result<pb::Appointment> {
    check_id("id", &req.id)?;
    let mut bad = Vec::new();
    let times = appointment_times(req.start_time.as_ref(), req.end_time.as_ref(), &mut bad, false);
    meeting(&req.meeting_url, &mut bad);
    let status = pb::AppointmentStatus::try_from(req.status).unwrap_or_default();
    if status == pb::AppointmentStatus::Cancelled {
        bad.push(FieldViolation::new("status", "use CancelAppointment to cancel"));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let current: model::Appointment = read_or_not_found(app, "Appointment", &req.id, "appointment").await?;
    if current.status == "cancelled" {
        return Err(Error::Precondition(
            "APPOINTMENT_CANCELLED",
            "the appointment is cancelled".into(),
        ));
    }
    // Canvas updates appointments partially: send only what changes.
    let mut patch = json!({ "resourceType": "Appointment", "id": req.id });
    if let Some((start, end)) = times {
        patch["start"] = json!(start);
        patch["end"] = json!(end);
    }
    if let Some(code) = convert::appointment_status_code(status) {
        patch["status"] = json!(code);
    }
    if !req.meeting_url.is_empty() {
        patch["contained"] =
            json!([{ "resourceType": "Endpoint", "id": "appointment-meeting-endpoint-0", "address": req.meeting_url }]);
    }
    app.fhir
        .update("Appointment", &req.id, &patch)
        .await
        .map_err(|e| slot_taken(e.into()))?;
    get_appointment(app, &req.id).await
}

pub(crate) async fn cancel_appointment(app: &App, req: &pb::CancelAppointmentRequest) -> Result<pb::Appointment> {
    check_id("id", &req.id)?;
    if req.reason.len() > 500 {
        return Err(Error::field("reason", "must be at most 500 characters"));
    }
    let current: model::Appointment = read_or_not_found(app, "Appointment", &req.id, "appointment").await?;
    if current.status != "cancelled" {
        let mut patch = json!({ "resourceType": "Appointment", "id": req.id, "status": "cancelled" });
        if !req.reason.is_empty() {
            patch["cancelationReason"] = json!({ "text": req.reason });
        }
        app.fhir.update("Appointment", &req.id, &patch).await?;
    }
    get_appointment(app, &req.id).await
}
