//! Payments at the edge: discount codes on the intake form, and the admin's charges, refunds, orders
//! and a patient's payments tab. The admin POSTs take an `Idempotency-Key` header.

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::HeaderMap,
    routing::{get, post},
    Router,
};
use era_kit::auth::Caller;
use era_proto::payments::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::views::{page, rfc3339, snake};
use crate::{
    auth::{Admin, CardHolder},
    error::{ApiError, ErrorBody},
    routes::{grpc, idempotency_key, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/intake/discount/validate", post(validate_discount))
        .route("/api/intake/setup-intent", post(setup_intent))
        .route("/api/intake/payment-method", post(save_payment_method))
        .route("/api/admin/charge-hold", post(charge_hold))
        .route("/api/admin/refund", post(refund))
        .route("/api/admin/orders", get(orders))
        .route("/api/admin/patients/{id}/payments", get(patient_payments))
}

fn charge_status(s: i32) -> String {
    pb::ChargeStatus::try_from(s).map(snake).unwrap_or_default()
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundView {
    pub id: String,
    pub charge_id: String,
    pub amount_cents: i64,
    pub currency: String,
    /// pending, requires_action, succeeded, failed or canceled.
    pub status: String,
    /// requested_by_customer, duplicate or fraudulent.
    pub reason: String,
    pub note: String,
    pub requested_by: String,
    /// Whom a service (the approval pipeline) issued it for; empty otherwise.
    pub on_behalf_of: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeView {
    pub id: String,
    pub canvas_patient_id: String,
    pub reference: String,
    pub amount_cents: i64,
    pub currency: String,
    /// pending, processing, succeeded, declined, authentication_required, failed or canceled.
    pub status: String,
    pub description: String,
    pub stripe_payment_intent_id: String,
    pub failure_code: String,
    pub decline_code: String,
    pub failure_message: String,
    pub amount_refunded_cents: i64,
    pub refunds: Vec<RefundView>,
    /// Who asked for the charge: an admin, or a service such as the approval pipeline.
    pub created_by: String,
    /// Whom a service charged for (e.g. the approving practitioner); empty otherwise.
    pub on_behalf_of: String,
    pub created_at: Option<String>,
}

impl From<pb::Charge> for ChargeView {
    fn from(c: pb::Charge) -> Self {
        Self {
            status: charge_status(c.status),
            id: c.id,
            canvas_patient_id: c.canvas_patient_id,
            reference: c.reference,
            amount_cents: c.amount_cents,
            currency: c.currency,
            description: c.description,
            stripe_payment_intent_id: c.stripe_payment_intent_id,
            failure_code: c.failure_code,
            decline_code: c.decline_code,
            failure_message: c.failure_message,
            amount_refunded_cents: c.amount_refunded_cents,
            refunds: c.refunds.into_iter().map(Into::into).collect(),
            created_by: c.created_by.map(|a| a.subject).unwrap_or_default(),
            on_behalf_of: c.on_behalf_of.map(|a| a.subject).unwrap_or_default(),
            created_at: c.created_at.map(rfc3339),
        }
    }
}

impl From<pb::Refund> for RefundView {
    fn from(r: pb::Refund) -> Self {
        Self {
            id: r.id,
            charge_id: r.charge_id,
            amount_cents: r.amount_cents,
            currency: r.currency,
            status: pb::RefundStatus::try_from(r.status).map(snake).unwrap_or_default(),
            reason: pb::RefundReason::try_from(r.reason).map(snake).unwrap_or_default(),
            note: r.note,
            requested_by: r.requested_by.map(|a| a.subject).unwrap_or_default(),
            on_behalf_of: r.on_behalf_of.map(|a| a.subject).unwrap_or_default(),
            created_at: r.created_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscountRequest {
    pub code: String,
    /// The amount before discount, in cents.
    pub amount_cents: i64,
    /// Lowercase ISO 4217; default "usd".
    #[serde(default)]
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscountView {
    /// valid, invalid, expired, exhausted, currency_mismatch or minimum_not_met.
    pub status: String,
    /// A sentence the patient can read.
    pub message: String,
    pub coupon_id: String,
    pub promotion_code_id: String,
    pub name: String,
    pub amount_off_cents: i64,
    /// Hundredths of a percent (2550 is 25.5 %).
    pub percent_off_basis_points: i32,
    pub discount_cents: i64,
    pub total_cents: i64,
    pub currency: String,
}

/// Checks a promotion code against an amount: the discount and the total in cents, or why the code
/// does not apply. Raw coupon ids are not accepted here (they are the clinic's internal names).
#[utoipa::path(
    post, path = "/api/intake/discount/validate", tag = "intake",
    request_body = DiscountRequest,
    responses((status = 200, body = DiscountView), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn validate_discount(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DiscountRequest>,
) -> Result<ApiJson<DiscountView>, ApiError> {
    // Customer-facing promotion codes only: raw coupon ids stay the staff's.
    let req = pb::ValidateDiscountCodeRequest {
        code: body.code,
        amount_cents: body.amount_cents,
        currency: body.currency,
        promotion_codes_only: true,
    };
    // The public form checks codes as the edge itself.
    let caller = Caller::service("era-edge/intake");
    let v = state
        .clients
        .payments
        .clone()
        .validate_discount_code(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(DiscountView {
        status: pb::DiscountCodeStatus::try_from(v.status)
            .map(snake)
            .unwrap_or_default(),
        message: v.message,
        coupon_id: v.coupon_id,
        promotion_code_id: v.promotion_code_id,
        name: v.name,
        amount_off_cents: v.amount_off_cents,
        percent_off_basis_points: v.percent_off_basis_points,
        discount_cents: v.discount_cents,
        total_cents: v.total_cents,
        currency: v.currency,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargeHoldRequest {
    pub canvas_patient_id: String,
    pub amount_cents: i64,
    #[serde(default)]
    pub currency: String,
    /// What is paid for; one charge per reference.
    pub reference: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeResult {
    pub charge: Option<ChargeView>,
    /// True when the reference already had this charge.
    pub existing: bool,
}

/// Charges the patient's saved card off-session, once per reference (`Idempotency-Key` honoured).
/// A decline is not an error: the charge comes back `declined` with the reason.
#[utoipa::path(
    post, path = "/api/admin/charge-hold", tag = "payments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    request_body = ChargeHoldRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeats return the first charge")),
    responses(
        (status = 200, body = ChargeResult),
        (status = 400, body = ErrorBody),
        (status = 422, description = "`no_payment_hold`, `reference_conflict`, `idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "`stripe_unavailable`", body = ErrorBody),
    )
)]
pub async fn charge_hold(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChargeHoldRequest>,
) -> Result<ApiJson<ChargeResult>, ApiError> {
    let req = pb::ChargeHoldRequest {
        canvas_patient_id: body.canvas_patient_id,
        amount_cents: body.amount_cents,
        currency: body.currency,
        reference: body.reference,
        description: body.description,
        idempotency_key: idempotency_key(&headers)?,
        // The admin is the caller; payments records that identity itself.
        actor: None,
    };
    let r = state
        .clients
        .payments
        .clone()
        .charge_hold(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(ChargeResult {
        charge: r.charge.map(Into::into),
        existing: r.existing,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundRequest {
    pub charge_id: String,
    /// Positive cents; absent refunds everything that remains.
    pub amount_cents: Option<i64>,
    /// requested_by_customer, duplicate or fraudulent.
    pub reason: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundResult {
    pub refund: Option<RefundView>,
    pub charge: Option<ChargeView>,
    pub existing: bool,
}

/// Refunds a charge in full or in part; the audit names the admin. `Idempotency-Key` is required.
#[utoipa::path(
    post, path = "/api/admin/refund", tag = "payments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    request_body = RefundRequest,
    params(("Idempotency-Key" = String, Header, description = "required; a repeat returns the first refund")),
    responses(
        (status = 200, body = RefundResult),
        (status = 400, body = ErrorBody),
        (status = 422, description = "`amount_exceeds_refundable`, `already_refunded`, `charge_not_succeeded`", body = ErrorBody),
    )
)]
pub async fn refund(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefundRequest>,
) -> Result<ApiJson<RefundResult>, ApiError> {
    let key = idempotency_key(&headers)?;
    if key.is_empty() {
        return Err(ApiError::field("Idempotency-Key", "is required for refunds"));
    }
    let reason = match body.reason.as_str() {
        "requested_by_customer" => pb::RefundReason::RequestedByCustomer,
        "duplicate" => pb::RefundReason::Duplicate,
        "fraudulent" => pb::RefundReason::Fraudulent,
        _ => {
            return Err(ApiError::field(
                "reason",
                "must be requested_by_customer, duplicate or fraudulent",
            ))
        }
    };
    let req = pb::RefundPaymentRequest {
        charge_id: body.charge_id,
        amount_cents: body.amount_cents,
        reason: reason as i32,
        note: body.note,
        idempotency_key: key,
        actor: None,
    };
    let r = state
        .clients
        .payments
        .clone()
        .refund_payment(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(RefundResult {
        refund: r.refund.map(Into::into),
        charge: r.charge.map(Into::into),
        existing: r.existing,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrdersQuery {
    pub canvas_patient_id: Option<String>,
    /// A charge status, e.g. succeeded or declined.
    pub status: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    pub next_page_token: String,
}

/// A charge with what it paid for: the pharmacy order its approval run placed and the shipment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    #[serde(flatten)]
    pub charge: ChargeView,
    /// For charges of the approval pipeline (reference `run:<id>`), once the run recorded its order.
    pub pharmacy_order: Option<super::fulfilment::PharmacyOrderView>,
}

/// Charges across patients, newest first (the payments side of the orders view).
#[utoipa::path(
    get, path = "/api/admin/orders", tag = "payments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(OrdersQuery),
    responses((status = 200, body = OrderPage), (status = 400, body = ErrorBody))
)]
pub async fn orders(
    State(state): State<AppState>,
    Admin(caller): Admin,
    query: Result<Query<OrdersQuery>, QueryRejection>,
) -> Result<ApiJson<OrderPage>, ApiError> {
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None | Some("") => pb::ChargeStatus::Unspecified,
        Some("pending") => pb::ChargeStatus::Pending,
        Some("processing") => pb::ChargeStatus::Processing,
        Some("succeeded") => pb::ChargeStatus::Succeeded,
        Some("declined") => pb::ChargeStatus::Declined,
        Some("authentication_required") => pb::ChargeStatus::AuthenticationRequired,
        Some("failed") => pb::ChargeStatus::Failed,
        Some("canceled") => pb::ChargeStatus::Canceled,
        Some("authorized") => pb::ChargeStatus::Authorized,
        Some(_) => return Err(ApiError::field("status", "is not a charge status")),
    };
    let req = pb::ListPaymentsRequest {
        canvas_patient_id: q.canvas_patient_id.unwrap_or_default(),
        status: status as i32,
        created_from: None,
        created_to: None,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .payments
        .clone()
        .list_payments(grpc(&state, &caller, req))
        .await?
        .into_inner();
    // The pipeline's charges name their run: one call joins the page's orders and shipments.
    let run_ids: Vec<String> = r
        .charges
        .iter()
        .filter_map(|c| c.reference.strip_prefix("run:"))
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .map(str::to_owned)
        .collect();
    let mut orders = if run_ids.is_empty() {
        Vec::new()
    } else {
        let req = era_proto::pharmacy_routing::v1::ListPharmacyOrdersRequest {
            run_ids,
            ..Default::default()
        };
        state
            .clients
            .routing
            .clone()
            .list_pharmacy_orders(grpc(&state, &caller, req))
            .await?
            .into_inner()
            .orders
    };
    let items = r
        .charges
        .into_iter()
        .map(|c| {
            let run = c.reference.strip_prefix("run:").map(str::to_owned);
            let pharmacy_order = run
                .and_then(|run| orders.iter().position(|o| o.run_id == run))
                .map(|i| orders.swap_remove(i).into());
            OrderView {
                charge: c.into(),
                pharmacy_order,
            }
        })
        .collect();
    Ok(ApiJson(OrderPage {
        items,
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    pub id: String,
    /// pending, active, requires_action, failed or replaced.
    pub status: String,
    pub card_brand: String,
    pub card_last4: String,
    pub card_exp_month: i32,
    pub card_exp_year: i32,
    pub created_at: Option<String>,
}

impl From<pb::PaymentHold> for HoldView {
    fn from(h: pb::PaymentHold) -> Self {
        let card = h.card.unwrap_or_default();
        Self {
            status: pb::PaymentHoldStatus::try_from(h.status).map(snake).unwrap_or_default(),
            id: h.id,
            card_brand: card.brand,
            card_last4: card.last4,
            card_exp_month: card.exp_month,
            card_exp_year: card.exp_year,
            created_at: h.created_at.map(rfc3339),
        }
    }
}

/// `{}` when there is nothing to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupIntentRequest {
    /// For Stripe's receipts; optional.
    #[serde(default)]
    pub email: String,
    /// For Stripe's receipts; optional.
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupIntentView {
    pub setup_intent_id: String,
    /// For Stripe.js `confirmCardSetup`; keep it in the page only.
    pub client_secret: String,
}

/// Starts saving a card for later charges: a Stripe SetupIntent for the patient the token names
/// (the intake submission's `intakeToken`, or a signed-in patient's token). An intake token sets up
/// one SetupIntent (the public form cannot mint more); a patient's `Idempotency-Key` asks for a new
/// one.
#[utoipa::path(
    post, path = "/api/intake/setup-intent", tag = "intake",
    security(("intake_token" = []), ("patient_jwt" = [])),
    request_body = SetupIntentRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "patient tokens only: a new key for a new SetupIntent")),
    responses(
        (status = 200, body = SetupIntentView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`ADMIN_SECRET` or an admin session: staff use the payments service", body = ErrorBody),
        (status = 503, description = "`stripe_unavailable`", body = ErrorBody),
    )
)]
pub async fn setup_intent(
    State(state): State<AppState>,
    holder: CardHolder,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SetupIntentRequest>,
) -> Result<ApiJson<SetupIntentView>, ApiError> {
    let key = match idempotency_key(&headers)? {
        k if !k.is_empty() && holder.intake => {
            return Err(ApiError::field(
                "Idempotency-Key",
                "an intake token sets up one card; send the request without it",
            ))
        }
        k if k.is_empty() => format!("token-{}", holder.jti),
        k => k,
    };
    let req = pb::CreateSetupIntentRequest {
        canvas_patient_id: holder.caller.subject.clone(),
        submission_id: String::new(),
        email: body.email,
        name: body.name,
        idempotency_key: key,
    };
    let r = state
        .clients
        .payments
        .clone()
        .create_setup_intent(grpc(&state, &holder.caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(SetupIntentView {
        setup_intent_id: r.setup_intent_id,
        client_secret: r.client_secret,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentMethodRequest {
    pub setup_intent_id: String,
    /// The PaymentMethod to confirm the SetupIntent with, when the page did not confirm it with
    /// Stripe.js itself.
    #[serde(default)]
    pub payment_method_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodView {
    /// The saved card, now the one charged when a prescription is approved.
    pub hold: Option<HoldView>,
}

/// Saves the card of a succeeded SetupIntent as the patient's card for later charges, replacing
/// the previous one.
#[utoipa::path(
    post, path = "/api/intake/payment-method", tag = "intake",
    security(("intake_token" = []), ("patient_jwt" = [])),
    request_body = PaymentMethodRequest,
    responses(
        (status = 200, body = PaymentMethodView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`ADMIN_SECRET` or an admin session", body = ErrorBody),
        (status = 404, description = "not this patient's SetupIntent", body = ErrorBody),
        (status = 422, description = "`setup_not_succeeded` (3-D Secure pending), `card_declined`", body = ErrorBody),
        (status = 429, description = "`too_many_card_attempts`: five cards tried on this SetupIntent", body = ErrorBody),
        (status = 503, description = "`stripe_unavailable`", body = ErrorBody),
    )
)]
pub async fn save_payment_method(
    State(state): State<AppState>,
    holder: CardHolder,
    ApiJson(body): ApiJson<PaymentMethodRequest>,
) -> Result<ApiJson<PaymentMethodView>, ApiError> {
    let req = pb::SavePaymentMethodRequest {
        canvas_patient_id: holder.caller.subject.clone(),
        setup_intent_id: body.setup_intent_id,
        payment_method_id: body.payment_method_id,
        idempotency_key: String::new(),
    };
    let r = state
        .clients
        .payments
        .clone()
        .save_payment_method(grpc(&state, &holder.caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(PaymentMethodView {
        hold: r.hold.map(Into::into),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientPayments {
    pub charges: Vec<ChargeView>,
    pub holds: Vec<HoldView>,
    pub next_page_token: String,
}

/// The payments tab of a patient: saved cards and charges with their refunds.
#[utoipa::path(
    get, path = "/api/admin/patients/{id}/payments", tag = "payments",
    security(("admin_secret" = []), ("admin_jwt" = [])),
    params(("id" = String, Path, description = "Canvas patient id"), super::patients::ListQuery),
    responses((status = 200, body = PatientPayments), (status = 400, body = ErrorBody))
)]
pub async fn patient_payments(
    State(state): State<AppState>,
    Admin(caller): Admin,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<super::patients::ListQuery>, QueryRejection>,
) -> Result<ApiJson<PatientPayments>, ApiError> {
    let (Path(id), Query(q)) = (id?, query?);
    let req = pb::ListPatientPaymentsRequest {
        canvas_patient_id: id,
        page: page(q.page_size, q.page_token),
    };
    let r = state
        .clients
        .payments
        .clone()
        .list_patient_payments(grpc(&state, &caller, req))
        .await?
        .into_inner();
    Ok(ApiJson(PatientPayments {
        charges: r.charges.into_iter().map(Into::into).collect(),
        holds: r.holds.into_iter().map(Into::into).collect(),
        next_page_token: r.page.map(|p| p.next_page_token).unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_in_snake_case() {
        assert_eq!(
            snake(pb::ChargeStatus::AuthenticationRequired),
            "authentication_required"
        );
        assert_eq!(snake(pb::RefundReason::RequestedByCustomer), "requested_by_customer");
        assert_eq!(snake(pb::DiscountCodeStatus::Valid), "valid");
        assert_eq!(snake(pb::ChargeStatus::Unspecified), "");
    }
}
