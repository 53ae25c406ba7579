//! Time zones for display: a patient's from their state, and visit times written the way the
//! patient reads them. Stored and compared times are always UTC.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The zone most of a state's people live in (states split across zones take their most populous
/// one; the patient can always name another).
pub(crate) fn of_state(state: &str) -> Option<Tz> {
    use chrono_tz::America as A;
    use chrono_tz::Pacific as P;
    Some(match state.trim().to_ascii_uppercase().as_str() {
        "CT" | "DE" | "DC" | "GA" | "MA" | "MD" | "ME" | "NC" | "NH" | "NJ" | "NY" | "OH" | "PA" | "RI" | "SC"
        | "VA" | "VT" | "WV" | "FL" => A::New_York,
        "MI" => A::Detroit,
        "IN" => A::Indiana::Indianapolis,
        "KY" => A::Kentucky::Louisville,
        "AL" | "AR" | "IA" | "IL" | "KS" | "LA" | "MN" | "MO" | "MS" | "NE" | "OK" | "TX" | "WI" | "SD" | "ND"
        | "TN" => A::Chicago,
        "CO" | "MT" | "NM" | "UT" | "WY" => A::Denver,
        "ID" => A::Boise,
        "AZ" => A::Phoenix,
        "CA" | "NV" | "OR" | "WA" => A::Los_Angeles,
        "AK" => A::Anchorage,
        "HI" => P::Honolulu,
        "PR" => A::Puerto_Rico,
        _ => return None,
    })
}

pub(crate) fn parse(zone: &str) -> Option<Tz> {
    zone.parse().ok()
}

/// "Tuesday, March 23 at 10:00 AM EDT": the visit time as the patient reads it.
pub(crate) fn display(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%A, %B %-d at %-I:%M %p %Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_times_follow_daylight_saving() {
        let ny = of_state("ga").unwrap();
        let winter: DateTime<Utc> = "2027-03-12T14:00:00Z".parse().unwrap();
        let summer: DateTime<Utc> = "2027-03-15T13:00:00Z".parse().unwrap();
        // The same wall-clock hour on either side of the change, an hour apart in UTC.
        assert_eq!(display(winter, ny), "Friday, March 12 at 9:00 AM EST");
        assert_eq!(display(summer, ny), "Monday, March 15 at 9:00 AM EDT");
        assert_eq!(of_state("AZ"), Some(chrono_tz::America::Phoenix));
        assert_eq!(of_state("ZZ"), None);
    }
}
