//! Stripe's test PaymentMethod ids (stripe.md §2.3) and how each behaves when set up or charged.

/// Why a card is refused: Stripe's `code`, `decline_code` and message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decline {
    pub(crate) code: &'static str,
    pub(crate) decline_code: &'static str,
    pub(crate) message: &'static str,
    pub(crate) param: Option<&'static str>,
}

const fn declined(decline_code: &'static str, message: &'static str) -> Decline {
    Decline {
        code: "card_declined",
        decline_code,
        message,
        param: None,
    }
}

pub(crate) const GENERIC: Decline = declined("generic_decline", "Your card was declined.");
pub(crate) const INSUFFICIENT_FUNDS: Decline = declined("insufficient_funds", "Your card has insufficient funds.");
const LOST: Decline = declined("lost_card", "Your card was declined.");
const STOLEN: Decline = declined("stolen_card", "Your card was declined.");
const EXPIRED: Decline = Decline {
    code: "expired_card",
    decline_code: "expired_card",
    message: "Your card has expired.",
    param: Some("exp_month"),
};
const INCORRECT_CVC: Decline = Decline {
    code: "incorrect_cvc",
    decline_code: "incorrect_cvc",
    message: "Your card's security code is incorrect.",
    param: Some("cvc"),
};
/// Stripe's fraud-flagged test card (4100000000000019).
const FRAUDULENT: Decline = declined("fraudulent", "Your card was declined.");
/// A card over its issuer's velocity limit (4000000000006975).
const VELOCITY: Decline = declined("card_velocity_exceeded", "Your card was declined.");
const PROCESSING: Decline = Decline {
    code: "processing_error",
    decline_code: "processing_error",
    message: "An error occurred while processing your card. Try again in a little bit.",
    param: None,
};
/// An off-session charge on a card that wants 3D Secure.
pub(crate) const AUTHENTICATION_REQUIRED: Decline = Decline {
    code: "authentication_required",
    decline_code: "authentication_required",
    message: "Your card was declined. This transaction requires authentication.",
    param: None,
};

/// What a test card does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Sets up and charges.
    Succeeds,
    /// Refused at attach/setup and at every charge (the decline tokens).
    Declines(&'static Decline),
    /// Attaches and sets up; every charge is declined (`pm_card_chargeCustomerFail`).
    ChargesFail(&'static Decline),
    /// Needs authentication on every payment and at setup; after authenticating, `then`.
    AlwaysAuthenticate { then: Option<&'static Decline> },
    /// Needs authentication at setup and on-session; off-session works once set up.
    AuthenticateUnlessSetUp,
    /// Charges succeed; a refund starts `pending` (settled by a control route).
    PendingRefund,
    /// Charges succeed; a refund starts `succeeded` and later fails.
    RefundFails,
}

#[derive(Debug)]
pub(crate) struct TestCard {
    pub(crate) token: &'static str,
    pub(crate) brand: &'static str,
    pub(crate) last4: &'static str,
    pub(crate) funding: &'static str,
    pub(crate) behaviour: Behaviour,
}

const fn card(token: &'static str, brand: &'static str, last4: &'static str, behaviour: Behaviour) -> TestCard {
    TestCard {
        token,
        brand,
        last4,
        funding: "credit",
        behaviour,
    }
}

pub(crate) static CARDS: &[TestCard] = &[
    card("pm_card_visa", "visa", "4242", Behaviour::Succeeds),
    TestCard {
        funding: "debit",
        ..card("pm_card_visa_debit", "visa", "5556", Behaviour::Succeeds)
    },
    card("pm_card_mastercard", "mastercard", "4444", Behaviour::Succeeds),
    TestCard {
        funding: "debit",
        ..card("pm_card_mastercard_debit", "mastercard", "8210", Behaviour::Succeeds)
    },
    TestCard {
        funding: "prepaid",
        ..card("pm_card_mastercard_prepaid", "mastercard", "5100", Behaviour::Succeeds)
    },
    card("pm_card_amex", "amex", "8431", Behaviour::Succeeds),
    card("pm_card_discover", "discover", "1117", Behaviour::Succeeds),
    card("pm_card_diners", "diners", "0004", Behaviour::Succeeds),
    card("pm_card_jcb", "jcb", "0505", Behaviour::Succeeds),
    card("pm_card_unionpay", "unionpay", "0005", Behaviour::Succeeds),
    card(
        "pm_card_chargeDeclinedFraudulent",
        "visa",
        "0019",
        Behaviour::Declines(&FRAUDULENT),
    ),
    card(
        "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
        "visa",
        "6975",
        Behaviour::Declines(&VELOCITY),
    ),
    card("pm_card_us", "visa", "4242", Behaviour::Succeeds),
    card(
        "pm_card_chargeCustomerFail",
        "visa",
        "0341",
        Behaviour::ChargesFail(&GENERIC),
    ),
    card(
        "pm_card_visa_chargeDeclined",
        "visa",
        "0002",
        Behaviour::Declines(&GENERIC),
    ),
    card("pm_card_chargeDeclined", "visa", "0002", Behaviour::Declines(&GENERIC)),
    card(
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "visa",
        "9995",
        Behaviour::Declines(&INSUFFICIENT_FUNDS),
    ),
    card(
        "pm_card_chargeDeclinedInsufficientFunds",
        "visa",
        "9995",
        Behaviour::Declines(&INSUFFICIENT_FUNDS),
    ),
    card(
        "pm_card_visa_chargeDeclinedLostCard",
        "visa",
        "9987",
        Behaviour::Declines(&LOST),
    ),
    card(
        "pm_card_chargeDeclinedLostCard",
        "visa",
        "9987",
        Behaviour::Declines(&LOST),
    ),
    card(
        "pm_card_visa_chargeDeclinedStolenCard",
        "visa",
        "9979",
        Behaviour::Declines(&STOLEN),
    ),
    card(
        "pm_card_chargeDeclinedStolenCard",
        "visa",
        "9979",
        Behaviour::Declines(&STOLEN),
    ),
    card(
        "pm_card_chargeDeclinedExpiredCard",
        "visa",
        "0069",
        Behaviour::Declines(&EXPIRED),
    ),
    card(
        "pm_card_chargeDeclinedIncorrectCvc",
        "visa",
        "0127",
        Behaviour::Declines(&INCORRECT_CVC),
    ),
    card(
        "pm_card_chargeDeclinedProcessingError",
        "visa",
        "0119",
        Behaviour::Declines(&PROCESSING),
    ),
    card(
        "pm_card_authenticationRequired",
        "visa",
        "3184",
        Behaviour::AlwaysAuthenticate { then: None },
    ),
    card(
        "pm_card_authenticationRequiredOnSetup",
        "visa",
        "3155",
        Behaviour::AuthenticateUnlessSetUp,
    ),
    card(
        "pm_card_authenticationRequiredSetupForOffSession",
        "visa",
        "0446",
        Behaviour::Succeeds,
    ),
    card(
        "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds",
        "visa",
        "3178",
        Behaviour::AlwaysAuthenticate {
            then: Some(&INSUFFICIENT_FUNDS),
        },
    ),
    card("pm_card_pendingRefund", "visa", "7726", Behaviour::PendingRefund),
    card("pm_card_refundFail", "visa", "5126", Behaviour::RefundFails),
];

/// The test card a magic id names.
pub(crate) fn lookup(token: &str) -> Option<&'static TestCard> {
    CARDS.iter().find(|c| c.token == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clinic_flow_cards_are_known() {
        assert_eq!(lookup("pm_card_visa").unwrap().behaviour, Behaviour::Succeeds);
        assert_eq!(
            lookup("pm_card_chargeCustomerFail").unwrap().behaviour,
            Behaviour::ChargesFail(&GENERIC)
        );
        assert!(matches!(
            lookup("pm_card_chargeDeclined").unwrap().behaviour,
            Behaviour::Declines(_)
        ));
        assert!(lookup("pm_card_nope").is_none());
    }
}
