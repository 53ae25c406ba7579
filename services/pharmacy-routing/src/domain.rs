//! Routing rules, free of I/O: input normalisation and the decision over a state's loaded routes.

use chrono::NaiveDate;

use crate::error::{Error, Result};

/// US territories and military codes: valid USPS codes the clinic does not serve, answered with a
/// clearer reason than "unknown".
const TERRITORIES: &[&str] = &["PR", "GU", "VI", "AS", "MP", "UM", "FM", "MH", "PW", "AA", "AE", "AP"];

/// A state code after trimming and upper-casing, shaped like a USPS code. Whether the clinic knows
/// it is the database's call (the `jurisdictions` table).
pub fn normalise_state(field: &str, raw: &str) -> Result<String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.is_empty() {
        return Err(Error::field(field, "is required"));
    }
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::field(
            field,
            "must be a two-letter USPS state code such as \"GA\"",
        ));
    }
    if TERRITORIES.contains(&code.as_str()) {
        return Err(Error::field(
            field,
            format!("{code} is a territory; only the 50 states and DC are served"),
        ));
    }
    Ok(code)
}

/// The error for a well-formed code the matrix does not know.
pub fn unknown_state(field: &str, code: &str) -> Error {
    Error::field(field, format!("{code} is not a US state code"))
}

/// A medication id after trimming and lower-casing; `None` when absent.
pub fn normalise_medication(field: &str, raw: &str) -> Result<Option<String>> {
    let id = raw.trim().to_ascii_lowercase();
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Error::field(
            field,
            "must be a medication id from the catalogue, such as \"semaglutide\"",
        ));
    }
    Ok(Some(id))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrescriberChoice {
    pub id: String,
    pub name: String,
    pub npi: String,
    pub active: bool,
    /// Expiry of this prescriber's licence for the state in question, if any.
    pub licence_expires_on: Option<NaiveDate>,
}

impl PrescriberChoice {
    pub fn licensed_on(&self, today: NaiveDate) -> bool {
        self.active && self.licence_expires_on.is_some_and(|d| d >= today)
    }
}

/// One route of a state, joined with its pharmacy and assigned prescriber.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub pharmacy_id: String,
    pub pharmacy_name: String,
    pub pharmacy_active: bool,
    pub route_active: bool,
    pub priority: i32,
    pub prescriber: PrescriberChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Primary,
    FallbackPharmacy,
    FallbackPrescriber,
}

#[derive(Clone, Debug)]
pub struct Decision {
    pub route: Candidate,
    pub prescriber: PrescriberChoice,
    pub reason: Reason,
    pub explanation: String,
}

/// What the decision needs to know about a state.
#[derive(Clone, Debug)]
pub struct StateFacts {
    pub code: String,
    pub excluded: bool,
    /// Sorted by priority.
    pub routes: Vec<Candidate>,
    /// Every prescriber with a licence record in this state, to fall back on when a route's own
    /// prescriber has lapsed.
    pub licensed: Vec<PrescriberChoice>,
}

/// Chooses the route and prescriber for a state (and medication, when `fills` says which
/// pharmacies fill it).
pub fn decide(state: &StateFacts, medication: Option<(&str, &[String])>, today: NaiveDate) -> Result<Decision> {
    if state.excluded {
        return Err(Error::StateExcluded {
            state: state.code.clone(),
        });
    }
    let active: Vec<&Candidate> = state
        .routes
        .iter()
        .filter(|r| r.route_active && r.pharmacy_active)
        .collect();
    let Some(first_active) = active.first() else {
        return Err(Error::NoActiveRoute {
            state: state.code.clone(),
        });
    };
    let route = match medication {
        None => *first_active,
        Some((id, fills)) => active
            .iter()
            .copied()
            .find(|r| fills.contains(&r.pharmacy_id))
            .ok_or_else(|| Error::MedicationNotAvailable {
                state: state.code.clone(),
                medication: id.to_owned(),
            })?,
    };
    let fallback_pharmacy = route.pharmacy_id != first_active.pharmacy_id;

    let (prescriber, fallback_prescriber) = if route.prescriber.licensed_on(today) {
        (route.prescriber.clone(), false)
    } else {
        let alternate = state
            .licensed
            .iter()
            .filter(|p| p.id != route.prescriber.id && p.licensed_on(today))
            .min_by(|a, b| a.name.cmp(&b.name))
            .ok_or_else(|| Error::NoLicensedPrescriber {
                state: state.code.clone(),
            })?;
        (alternate.clone(), true)
    };

    let mut explanation = format!(
        "{} is served by {} (priority {}) with {}",
        state.code, route.pharmacy_name, route.priority, prescriber.name
    );
    if fallback_pharmacy {
        explanation.push_str(&format!(
            "; {} does not fill this medication",
            first_active.pharmacy_name
        ));
    }
    if fallback_prescriber {
        explanation.push_str(&format!(
            "; {} has no current licence in {}",
            route.prescriber.name, state.code
        ));
    }
    let reason = if fallback_prescriber {
        Reason::FallbackPrescriber
    } else if fallback_pharmacy {
        Reason::FallbackPharmacy
    } else {
        Reason::Primary
    };
    Ok(Decision {
        route: route.clone(),
        prescriber,
        reason,
        explanation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn prescriber(id: &str, expires: Option<&str>) -> PrescriberChoice {
        PrescriberChoice {
            id: id.into(),
            name: id.to_uppercase(),
            npi: "1234567890".into(),
            active: true,
            licence_expires_on: expires.map(day),
        }
    }

    fn candidate(pharmacy: &str, priority: i32, p: PrescriberChoice) -> Candidate {
        Candidate {
            pharmacy_id: pharmacy.into(),
            pharmacy_name: pharmacy.to_uppercase(),
            pharmacy_active: true,
            route_active: true,
            priority,
            prescriber: p,
        }
    }

    #[test]
    fn state_input_is_normalised_and_bad_codes_are_named() {
        assert_eq!(normalise_state("state", "  ga ").unwrap(), "GA");
        assert_eq!(normalise_state("state", "dc").unwrap(), "DC");
        for bad in ["", "   ", "Georgia", "G", "G1", "ÄB"] {
            assert!(matches!(normalise_state("state", bad), Err(Error::InvalidArgument(v)) if v[0].field == "state"));
        }
        let Err(Error::InvalidArgument(v)) = normalise_state("state", "pr") else {
            panic!("PR accepted")
        };
        assert!(v[0].reason.contains("territory"));
    }

    #[test]
    fn a_lapsed_prescriber_falls_back_or_fails_with_a_reason() {
        let today = day("2026-06-01");
        let lapsed = prescriber("a", Some("2026-05-31"));
        let other = prescriber("b", Some("2026-06-01"));
        let facts = StateFacts {
            code: "GA".into(),
            excluded: false,
            routes: vec![candidate("gmp", 1, lapsed.clone())],
            licensed: vec![lapsed.clone(), other.clone()],
        };
        let d = decide(&facts, None, today).unwrap();
        assert_eq!(d.prescriber.id, "b");
        assert_eq!(d.reason, Reason::FallbackPrescriber);

        let alone = StateFacts {
            licensed: vec![lapsed],
            ..facts
        };
        assert!(matches!(
            decide(&alone, None, today),
            Err(Error::NoLicensedPrescriber { .. })
        ));
    }

    #[test]
    fn medication_skips_pharmacies_that_cannot_fill_it() {
        let p = prescriber("b", Some("2030-01-01"));
        let facts = StateFacts {
            code: "WY".into(),
            excluded: false,
            routes: vec![candidate("boothwyn", 1, p.clone()), candidate("strive", 2, p.clone())],
            licensed: vec![p],
        };
        let today = day("2026-06-01");
        let fills = vec!["strive".to_owned()];
        let d = decide(&facts, Some(("tirzepatide", &fills)), today).unwrap();
        assert_eq!(
            (d.route.pharmacy_id.as_str(), d.reason),
            ("strive", Reason::FallbackPharmacy)
        );
        let none: Vec<String> = vec![];
        assert!(matches!(
            decide(&facts, Some(("x", &none)), today),
            Err(Error::MedicationNotAvailable { .. })
        ));
    }
}
