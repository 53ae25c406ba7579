//! One chart per person: which existing Canvas patient, if any, an intake belongs to.
//!
//! The rule (docs/decisions/one-chart-per-person.md): an intake is the same person as a chart when
//! email, date of birth, given name and family name all match (case, spacing and accents aside).
//! Candidates are the active charts Canvas finds by the email, or by the family name and date of
//! birth, and the charts our own intake records (blind indexes) tie to the email or the date of birth.
//! - No candidate is the same person and none conflicts: a new chart.
//! - Exactly one is the same person and none conflicts: that chart.
//! - Otherwise (a chart of someone else has this email; a chart with this name and date of birth has
//!   another email; several charts are this person) a person decides: the intake is held for review.

use std::collections::BTreeSet;

use era_proto::canvas::v1 as pb;

use crate::{app::App, error::Result, fhir::model};

/// Where an intake goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Match {
    New,
    Existing(String),
    Review {
        reason: &'static str,
        candidates: Vec<String>,
    },
}

/// Another person's chart has this email.
pub(crate) const EMAIL_BELONGS_TO_ANOTHER_CHART: &str = "email_belongs_to_another_chart";
/// A chart with this name and date of birth has another email (perhaps the same person, perhaps not).
pub(crate) const SAME_PERSON_OTHER_EMAIL: &str = "same_person_other_email";
/// Several charts are this person already.
pub(crate) const SEVERAL_CHARTS_MATCH: &str = "several_charts_match";

/// At most this many candidate charts are read.
const MAX_CANDIDATES: usize = 20;

/// Who a chart or an intake says the person is, folded for comparison.
#[derive(Debug, PartialEq, Eq)]
struct Person {
    email: String,
    birth_date: String,
    given: String,
    family: String,
}

fn fold(s: &str) -> String {
    let lowered: String = s
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            other => other,
        })
        .collect();
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Person {
    fn of_intake(d: &pb::IntakeDemographics) -> Self {
        Self {
            email: fold(&d.email),
            birth_date: d.birth_date.trim().to_owned(),
            given: fold(&d.given_name),
            family: fold(&d.family_name),
        }
    }

    fn of_chart(p: &pb::Patient) -> Self {
        Self {
            email: fold(&p.email),
            birth_date: p.birth_date.trim().to_owned(),
            given: fold(&p.given_name),
            family: fold(&p.family_name),
        }
    }
}

/// Decides from the candidates' identities (pure, so the rule is tested on its own).
fn decide(intake: &Person, charts: &[(String, Person)]) -> Match {
    let mut same = Vec::new();
    let mut conflict: Option<&'static str> = None;
    for (id, chart) in charts {
        let same_email = !intake.email.is_empty() && chart.email == intake.email;
        let same_identity =
            chart.birth_date == intake.birth_date && chart.given == intake.given && chart.family == intake.family;
        match (same_email, same_identity) {
            (true, true) => same.push(id.clone()),
            (true, false) => conflict = Some(EMAIL_BELONGS_TO_ANOTHER_CHART),
            (false, true) => conflict = conflict.or(Some(SAME_PERSON_OTHER_EMAIL)),
            (false, false) => {}
        }
    }
    let candidates = || {
        charts
            .iter()
            .filter(|(_, c)| {
                c.email == intake.email
                    || (c.birth_date == intake.birth_date && c.given == intake.given && c.family == intake.family)
            })
            .map(|(id, _)| id.clone())
            .collect()
    };
    match (conflict, same.len()) {
        (Some(reason), _) => Match::Review {
            reason,
            candidates: candidates(),
        },
        (None, 0) => Match::New,
        (None, 1) => Match::Existing(same.remove(0)),
        (None, _) => Match::Review {
            reason: SEVERAL_CHARTS_MATCH,
            candidates: candidates(),
        },
    }
}

/// Finds where an intake from `d` belongs.
pub(crate) async fn match_intake(app: &App, d: &pb::IntakeDemographics) -> Result<Match> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let searches = [
        vec![("email", d.email.trim().to_owned())],
        vec![
            ("family", d.family_name.trim().to_owned()),
            ("birthdate", d.birth_date.trim().to_owned()),
        ],
    ];
    let mut charts: Vec<(String, Person)> = Vec::new();
    for params in searches {
        let mut params = params;
        params.push(("_count", MAX_CANDIDATES.to_string()));
        let found = app.fhir.search::<model::Patient>("Patient", &params).await?;
        for p in found.items {
            let p = crate::convert::patient(&p);
            if p.active && ids.insert(p.id.clone()) {
                charts.push((p.id.clone(), Person::of_chart(&p)));
            }
        }
    }
    // Charts our earlier intakes created or joined, found by the blind indexes (Canvas may hold the
    // email differently, e.g. after an edit there).
    let ours = app
        .store
        .patients_matching(Some(d.email.as_str()), None)
        .await?
        .into_iter()
        .chain(app.store.patients_matching(None, Some(d.birth_date.as_str())).await?);
    for id in ours {
        if charts.len() >= MAX_CANDIDATES || !ids.insert(id.clone()) {
            continue;
        }
        match app.fhir.read::<model::Patient>("Patient", &id).await {
            Ok(p) => {
                let p = crate::convert::patient(&p);
                if p.active {
                    charts.push((p.id.clone(), Person::of_chart(&p)));
                }
            }
            Err(crate::fhir::FhirError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(decide(&Person::of_intake(d), &charts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(email: &str, dob: &str, given: &str, family: &str) -> Person {
        Person {
            email: fold(email),
            birth_date: dob.into(),
            given: fold(given),
            family: fold(family),
        }
    }

    #[test]
    fn one_chart_per_person_and_a_person_decides_what_cannot_be_told() {
        let ann = person("ann@example.test", "1980-01-02", "Ann", "Lee");
        // Nobody yet: a new chart.
        assert_eq!(decide(&ann, &[]), Match::New);
        // Her own chart, written differently: hers.
        let charts = [(
            "p1".to_owned(),
            person(" ANN@example.test", "1980-01-02", "ann", "LEE "),
        )];
        assert_eq!(decide(&ann, &charts), Match::Existing("p1".into()));
        assert_eq!(fold("Zoë  Núñez"), "zoe nunez");
        // Someone else's chart has her email (a family member, or an intake naming a stranger's
        // email): held.
        let charts = [("p2".to_owned(), person("ann@example.test", "1955-07-07", "Bob", "Lee"))];
        assert_eq!(
            decide(&ann, &charts),
            Match::Review {
                reason: EMAIL_BELONGS_TO_ANOTHER_CHART,
                candidates: vec!["p2".into()]
            }
        );
        // Her name and birth date under another email: maybe her, maybe not: held.
        let charts = [("p3".to_owned(), person("ann.lee@work.test", "1980-01-02", "Ann", "Lee"))];
        assert!(matches!(
            decide(&ann, &charts),
            Match::Review {
                reason: SAME_PERSON_OTHER_EMAIL,
                ..
            }
        ));
        // Already two charts of her: held, not a third.
        let charts = [
            ("p1".to_owned(), person("ann@example.test", "1980-01-02", "Ann", "Lee")),
            ("p4".to_owned(), person("ann@example.test", "1980-01-02", "Ann", "Lee")),
        ];
        assert!(matches!(
            decide(&ann, &charts),
            Match::Review {
                reason: SEVERAL_CHARTS_MATCH,
                ..
            }
        ));
        // A stranger found by the family name and birth date alone changes nothing.
        let charts = [("p5".to_owned(), person("zed@example.test", "1980-01-02", "Zed", "Lee"))];
        assert_eq!(decide(&ann, &charts), Match::New);
    }
}
