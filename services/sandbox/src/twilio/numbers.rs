//! Phone numbers: E.164, the magic numbers of Twilio's test credentials (external-apis.md §3;
//! twilio.com/docs/iam/test-credentials), and how many SMS segments a body takes.

use super::errors::{TwilioError, TwilioResult};

/// The magic `From` that always succeeds.
pub(crate) const MAGIC_FROM_OK: &str = "+15005550006";

/// `+` and 2 to 15 digits, the first not 0.
pub(crate) fn is_e164(n: &str) -> bool {
    let Some(digits) = n.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// The `From` must be a number this account owns; the magic numbers fail as Twilio's do.
pub(crate) fn check_from(from: &str, owned: &[String]) -> TwilioResult<()> {
    match from {
        "+15005550001" => Err(TwilioError::invalid(
            21212,
            format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
        )),
        "+15005550008" => Err(TwilioError::invalid(
            21611,
            "This 'From' number has exceeded the maximum number of queued messages",
        )),
        MAGIC_FROM_OK => Ok(()),
        _ if owned.iter().any(|o| o == from) => Ok(()),
        _ if !is_e164(from) => Err(TwilioError::invalid(
            21212,
            format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
        )),
        // +15005550007 and every number the account does not own.
        _ => Err(TwilioError::invalid(
            21606,
            format!(
                "The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your \
                 account."
            ),
        )),
    }
}

/// The `To` must be E.164; the magic numbers fail as Twilio's do.
pub(crate) fn check_to(to: &str, from: &str) -> TwilioResult<()> {
    let invalid = || TwilioError::invalid(21211, format!("The 'To' number {to} is not a valid phone number."));
    if !is_e164(to) {
        return Err(invalid());
    }
    match to {
        "+15005550001" => Err(invalid()),
        "+15005550002" => Err(TwilioError::invalid(
            21612,
            format!("The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via SMS."),
        )),
        "+15005550003" => Err(TwilioError::invalid(
            21408,
            format!("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
        )),
        "+15005550004" => Err(TwilioError::invalid(21610, "Attempt to send to unsubscribed recipient")),
        "+15005550009" => Err(TwilioError::invalid(21614, "'To' number is not a valid mobile number")),
        _ => Ok(()),
    }
}

/// GSM 03.38's basic set; anything else sends the whole body as UCS-2.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM's extension table: two septets each.
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// Segments for `body`: 160 GSM-7 septets (153 once split), or 70 UCS-2 units (67 once split).
pub(crate) fn segments(body: &str) -> usize {
    let septets: Option<usize> = body
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (units, single, split) = match septets {
        Some(s) => (s, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    if units <= single {
        1
    } else {
        units.div_ceil(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_is_a_plus_and_up_to_fifteen_digits() {
        for ok in ["+15005550006", "+442071838750", "+12"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "15005550006",
            "+0123",
            "+1 500 555 0006",
            "+1234567890123456",
            "+",
            "(500) 555-0006",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn magic_numbers_give_twilios_codes() {
        let owned = vec!["+15555550100".to_owned()];
        assert!(check_from("+15005550006", &owned).is_ok());
        assert!(check_from("+15555550100", &owned).is_ok());
        assert_eq!(check_from("+15005550001", &owned).unwrap_err().code, 21212);
        assert_eq!(check_from("+15005550007", &owned).unwrap_err().code, 21606);
        assert_eq!(check_from("+15551234567", &owned).unwrap_err().code, 21606);
        for (to, code) in [
            ("+15005550001", 21211),
            ("+15005550002", 21612),
            ("+15005550003", 21408),
            ("+15005550004", 21610),
            ("+15005550009", 21614),
            ("5551234", 21211),
        ] {
            assert_eq!(check_to(to, MAGIC_FROM_OK).unwrap_err().code, code, "{to}");
        }
        assert!(check_to("+15551234567", MAGIC_FROM_OK).is_ok());
    }

    #[test]
    fn segments_follow_the_encoding() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        assert_eq!(segments(&"{".repeat(80)), 1);
        assert_eq!(segments(&"{".repeat(81)), 2);
        assert_eq!(segments(&"é".repeat(70)), 1);
        assert_eq!(segments(&"✓".repeat(70)), 1);
        assert_eq!(segments(&"✓".repeat(71)), 2);
        assert_eq!(segments(""), 1);
    }
}
