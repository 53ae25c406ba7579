#!/usr/bin/env python3
"""Wire-compatibility check of the sandbox's Stripe simulator with the official stripe-python SDK.

Usage: stripe_sdk.py <api_base> <secret_key>
  api_base: the sandbox's Stripe prefix, e.g. http://127.0.0.1:8090/stripe (the SDK appends /v1/...)

Runs the clinic's flow with both of the SDK's styles (the legacy global `stripe.api_base` and
`StripeClient(base_addresses=...)`) and exits non-zero on the first mismatch. Needs `pip install stripe`.
"""

import sys
import uuid

try:
    import stripe
except ImportError:
    sys.stderr.write("stripe-python is not installed: run `pip install stripe`\n")
    sys.exit(2)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def legacy_flow(api_base, key):
    stripe.api_key = key
    stripe.api_base = api_base
    stripe.max_network_retries = 0

    customer = stripe.Customer.create(email="ada@example.test", name="Ada", metadata={"patient": "p-1"})
    check(customer.id.startswith("cus_"), f"customer id {customer.id}")
    check(customer.metadata["patient"] == "p-1", "customer metadata")
    again = stripe.Customer.retrieve(customer.id)
    check(again.email == "ada@example.test", "retrieved customer email")

    setup = stripe.SetupIntent.create(
        customer=customer.id,
        payment_method="pm_card_visa",
        payment_method_types=["card"],
        usage="off_session",
        confirm=True,
        expand=["payment_method"],
    )
    check(setup.status == "succeeded", f"setup intent status {setup.status}")
    pm = setup.payment_method
    check(pm.id.startswith("pm_") and pm.id != "pm_card_visa", f"fresh payment method id {pm.id}")
    check(pm.card.last4 == "4242", "visa last4")
    check(pm.customer == customer.id, "payment method attached to the customer")

    # The two-step variant: create, then confirm.
    setup2 = stripe.SetupIntent.create(customer=customer.id, payment_method_types=["card"])
    check(setup2.status == "requires_payment_method", f"unconfirmed setup status {setup2.status}")
    setup2 = stripe.SetupIntent.confirm(setup2.id, payment_method="pm_card_mastercard")
    check(setup2.status == "succeeded", "confirmed setup intent")
    check(stripe.SetupIntent.retrieve(setup2.id).status == "succeeded", "retrieved setup intent")

    intent = stripe.PaymentIntent.create(
        amount=12500,
        currency="usd",
        customer=customer.id,
        payment_method=pm.id,
        off_session=True,
        confirm=True,
        metadata={"visit": "v-9"},
        expand=["latest_charge"],
    )
    check(intent.status == "succeeded", f"payment intent status {intent.status}")
    check(intent.amount_received == 12500, "amount received")
    check(intent.latest_charge.id.startswith("ch_"), "latest_charge expanded")
    check(intent.metadata["visit"] == "v-9", "payment intent metadata")

    refund = stripe.Refund.create(payment_intent=intent.id, amount=2500, reason="requested_by_customer")
    check(refund.status == "succeeded" and refund.amount == 2500, "partial refund")
    charge = stripe.Charge.retrieve(intent.latest_charge.id)
    check(charge.amount_refunded == 2500 and not charge.refunded, "charge shows the partial refund")
    try:
        stripe.Refund.create(payment_intent=intent.id, amount=999999)
        raise AssertionError("an over-refund must fail")
    except stripe.InvalidRequestError as e:
        check(e.http_status == 400, "over-refund status")

    coupon = stripe.Coupon.retrieve("SAVE50")
    check(coupon.amount_off == 5000 and coupon.currency == "usd" and coupon.valid, "SAVE50 coupon")
    check(not stripe.Coupon.retrieve("EXPIRED10").valid, "EXPIRED10 is not valid")
    codes = stripe.PromotionCode.list(code="SPRING", active=True)
    check(len(codes.data) == 1, "SPRING promotion code found by code")

    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    check(failing.id.startswith("pm_"), "chargeCustomerFail attaches")
    try:
        stripe.PaymentIntent.create(
            amount=5000, currency="usd", customer=customer.id, payment_method=failing.id, off_session=True, confirm=True
        )
        raise AssertionError("pm_card_chargeCustomerFail must be declined")
    except stripe.CardError as e:
        check(e.http_status == 402, "card error status")
        check(e.code == "card_declined", f"card error code {e.code}")
        check(e.error.decline_code == "generic_decline", "decline code")
        check(e.error.payment_intent["id"].startswith("pi_"), "embedded payment intent")
        check(e.error.payment_intent["status"] == "requires_payment_method", "embedded intent status")
        check(e.request_id and e.request_id.startswith("req_"), "request id on the error")

    try:
        stripe.PaymentMethod.attach("pm_card_chargeDeclined", customer=customer.id)
        raise AssertionError("a decline card must refuse to attach")
    except stripe.CardError as e:
        check(e.code == "card_declined", "attach refused as card_declined")

    # Idempotency through the SDK: the same key replays the stored response.
    idem = str(uuid.uuid4())
    first = stripe.Customer.create(email="twice@example.test", idempotency_key=idem)
    second = stripe.Customer.create(email="twice@example.test", idempotency_key=idem)
    check(first.id == second.id, "idempotent replay returns the same customer")
    try:
        stripe.Customer.create(email="other@example.test", idempotency_key=idem)
        raise AssertionError("a reused key with other params must fail")
    except stripe.IdempotencyError:
        pass

    try:
        stripe.Customer.retrieve("cus_missing")
        raise AssertionError("a missing customer must 404")
    except stripe.InvalidRequestError as e:
        check(e.http_status == 404 and e.code == "resource_missing", "missing customer error")

    stripe.api_key = "sk_test_wrong_key_9999"
    try:
        stripe.Customer.list(limit=1)
        raise AssertionError("a bad key must be refused")
    except stripe.AuthenticationError as e:
        check("sk_test_****9999" in str(e), f"masked key in the message: {e}")
    stripe.api_key = key


def client_flow(api_base, key):
    client = stripe.StripeClient(key, base_addresses={"api": api_base}, max_network_retries=0)
    v1 = client.v1
    customer = v1.customers.create(params={"email": "client@example.test"})
    page = v1.customers.list(params={"limit": 1})
    check(len(page.data) == 1 and page.has_more, "customers list with limit")
    nxt = v1.customers.list(params={"limit": 1, "starting_after": page.data[0].id})
    check(nxt.data[0].id != page.data[0].id, "starting_after pages on")
    intent = v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
        }
    )
    check(intent.status == "succeeded", "client-style off-session payment")
    try:
        v1.payment_intents.create(
            params={
                "amount": 2000,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": "pm_card_authenticationRequired",
                "confirm": True,
                "off_session": True,
            }
        )
        raise AssertionError("authenticationRequired must fail off-session")
    except stripe.CardError as e:
        check(e.code == "authentication_required", f"auth required code {e.code}")
    events = v1.events.list(params={"type": "payment_intent.succeeded", "limit": 3})
    check(any(ev.data.object.id == intent.id for ev in events.data), "payment_intent.succeeded event")


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    api_base, key = sys.argv[1].rstrip("/"), sys.argv[2]
    legacy_flow(api_base, key)
    client_flow(api_base, key)
    sys.stderr.write(f"stripe-python {stripe.VERSION}: sandbox is wire compatible\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
