//! The demo clinic every sandbox starts with, and returns to on reset: two prescribers and a care
//! team, the GLP-1 intake questionnaire, 36 patients across US states with charts, an Rx Review
//! queue, messages and two booked visits.
//!
//! Resource ids are derived from stable names (the first 16 bytes of SHA-256, as 32 hex
//! characters), so they are the same on every start; dates are relative to the day of seeding.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    fields::{reference, timestamp},
    resources::{self, Kind, LOCATION_ID as CLINIC_LOCATION_ID, NPI_SYSTEM, SCHEDULABLE_URL},
    store::Store,
};

/// Ali Nolan, FNP-C (NPI 1982609764): prescribes for patients in [`ALI_NOLAN_STATES`].
pub const ALI_NOLAN_ID: &str = "e81b8c87dddf0b2dfc2c19e233a3131f";
/// Neelima Singh, MD (NPI 1164633533): prescribes for patients in every other state.
pub const NEELIMA_SINGH_ID: &str = "c828f3819746e6bc0d4979ce3414cdd8";
/// "Era Care Team": staff who take no appointments, hidden from default Practitioner searches.
pub const CARE_TEAM_ID: &str = "508b62c98690fca06a103947d4414432";
/// The "Era GLP-1 intake" Questionnaire.
pub const INTAKE_QUESTIONNAIRE_ID: &str = "aa5bd4682866228498f0c23f692acf42";
/// The clinic's one practice location (`Location/1`; schedule ids embed it).
pub const LOCATION_ID: &str = CLINIC_LOCATION_ID;
/// The Task label (and description) of the prescription review queue.
pub const RX_REVIEW_LABEL: &str = "Rx Review";
pub const ALI_NOLAN_NPI: &str = "1982609764";
pub const NEELIMA_SINGH_NPI: &str = "1164633533";

/// States whose patients Ali Nolan prescribes for; Neelima Singh covers the rest.
pub const ALI_NOLAN_STATES: &[&str] = &[
    "AL", "AZ", "FL", "GA", "IL", "IN", "KY", "LA", "MI", "MO", "MS", "NJ", "NY", "OH", "PA", "SC", "TN", "VA",
];

/// Seeded patients with an open Rx Review task (the first this many in [`patients`]' order).
pub const OPEN_RX_REVIEWS: usize = 26;

/// The id the seed gives a resource of `resource_type` named `key`.
pub fn seed_id(resource_type: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{resource_type}:{key}").as_bytes());
    hex::encode(&digest[..16])
}

/// The prescriber (Practitioner id) responsible for a patient in `state`.
pub fn prescriber_for_state(state: &str) -> &'static str {
    if ALI_NOLAN_STATES.contains(&state) {
        ALI_NOLAN_ID
    } else {
        NEELIMA_SINGH_ID
    }
}

/// A seeded patient, for tests in other crates that need to find one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoPatient {
    pub id: String,
    pub given: &'static str,
    pub family: &'static str,
    pub email: String,
    pub phone: String,
    pub birth_date: &'static str,
    pub state: &'static str,
    /// The Practitioner id of the state's prescriber.
    pub prescriber_id: &'static str,
}

struct Row {
    given: &'static str,
    family: &'static str,
    female: bool,
    birth_date: &'static str,
    state: &'static str,
    city: &'static str,
    zip: &'static str,
    line: &'static str,
}

const fn row(
    given: &'static str,
    family: &'static str,
    female: bool,
    birth_date: &'static str,
    (state, city, zip, line): (&'static str, &'static str, &'static str, &'static str),
) -> Row {
    Row {
        given,
        family,
        female,
        birth_date,
        state,
        city,
        zip,
        line,
    }
}

const F: bool = true;
const M: bool = false;

// One patient a line reads as the table it is.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    row("Maya", "Thompson", F, "1986-04-12", ("AL", "Birmingham", "35203", "1420 Magnolia Ave")),
    row("Jordan", "Reyes", M, "1979-09-30", ("AZ", "Phoenix", "85004", "220 E Roosevelt St")),
    row("Claire", "Donovan", F, "1984-01-15", ("CO", "Denver", "80202", "1600 Glenarm Pl")),
    row("Priya", "Patel", F, "1991-02-18", ("FL", "Tampa", "33602", "705 N Franklin St")),
    row("Marcus", "Bennett", M, "1968-11-05", ("GA", "Atlanta", "30308", "88 Peachtree Pl NE")),
    row("Ethan", "Larsen", M, "1976-09-02", ("WA", "Seattle", "98101", "1301 5th Ave")),
    row("Elena", "Kowalski", F, "1974-07-22", ("IL", "Chicago", "60614", "2311 N Clark St")),
    row("Derek", "Hollins", M, "1983-03-09", ("IN", "Indianapolis", "46204", "15 Monument Cir")),
    row("Megan", "Schultz", F, "1990-04-26", ("OR", "Portland", "97204", "1120 SW 5th Ave")),
    row("Tanya", "Brooks", F, "1962-12-01", ("KY", "Louisville", "40202", "410 W Main St")),
    row("Andre", "Fontenot", M, "1977-05-27", ("LA", "Baton Rouge", "70802", "333 Laurel St")),
    row("Carlos", "Mendoza", M, "1973-12-12", ("NV", "Las Vegas", "89101", "400 S 4th St")),
    row("Rachel", "Nguyen", F, "1989-08-14", ("MI", "Detroit", "48226", "1 Campus Martius")),
    row("Keith", "Sullivan", M, "1958-01-23", ("MO", "St. Louis", "63101", "900 Locust St")),
    row("Amber", "Christensen", F, "1987-06-30", ("UT", "Salt Lake City", "84111", "50 S Main St")),
    row("Shanice", "Walker", F, "1993-10-03", ("MS", "Jackson", "39201", "200 E Capitol St")),
    row("Daniel", "Rosen", M, "1971-06-11", ("NJ", "Newark", "07102", "50 Park Pl")),
    row("Patrick", "Doyle", M, "1964-02-08", ("MA", "Boston", "02108", "1 Beacon St")),
    row("Olivia", "Martinez", F, "1985-09-19", ("NY", "Buffalo", "14202", "295 Main St")),
    row("Brian", "Callahan", M, "1966-04-04", ("OH", "Columbus", "43215", "100 E Broad St")),
    row("Sofia", "Rinaldi", F, "1995-11-11", ("CT", "Hartford", "06103", "185 Asylum St")),
    row("Lauren", "Fischer", F, "1980-12-29", ("PA", "Pittsburgh", "15222", "600 Grant St")),
    row("Tyrone", "Jenkins", M, "1975-02-14", ("SC", "Columbia", "29201", "1200 Main St")),
    row("Gregory", "Mills", M, "1959-07-19", ("MD", "Baltimore", "21202", "100 Light St")),
    row("Hannah", "Carter", F, "1997-07-07", ("TN", "Nashville", "37203", "401 Church St")),
    row("Jenna", "Olson", F, "1981-03-03", ("WI", "Madison", "53703", "1 E Main St")),
    row("Samuel", "Park", M, "1988-03-31", ("VA", "Richmond", "23219", "919 E Main St")),
    row("Kevin", "Brandt", M, "1970-10-28", ("IA", "Des Moines", "50309", "666 Walnut St")),
    row("Gloria", "Alvarez", F, "1955-10-10", ("FL", "Miami", "33130", "1100 Brickell Bay Dr")),
    row("Aisha", "Rahman", F, "1994-08-22", ("WA", "Spokane", "99201", "601 W 1st Ave")),
    row("Nathan", "Price", M, "1992-05-05", ("NY", "Albany", "12207", "75 State St")),
    row("Trevor", "Hughes", M, "1967-05-16", ("CO", "Boulder", "80302", "1777 Broadway")),
    row("Denise", "Howard", F, "1969-08-08", ("GA", "Savannah", "31401", "22 Bull St")),
    row("Naomi", "Fields", F, "1983-12-04", ("MA", "Worcester", "01608", "455 Main St")),
    row("Victor", "Ramos", M, "1982-11-20", ("AZ", "Tucson", "85701", "150 W Congress St")),
    row("Luis", "Herrera", M, "2000-01-21", ("NV", "Reno", "89501", "1 E 1st St")),
];

/// The seeded patients, in creation order.
pub fn patients() -> Vec<DemoPatient> {
    ROWS.iter().enumerate().map(|(i, r)| demo_patient(i, r)).collect()
}

fn demo_patient(i: usize, r: &Row) -> DemoPatient {
    DemoPatient {
        id: seed_id("Patient", &format!("{}.{}", r.given, r.family).to_lowercase()),
        given: r.given,
        family: r.family,
        email: format!("{}.{}@patients.era-demo.test", r.given, r.family).to_lowercase(),
        phone: format!("+1555555{:04}", 100 + i),
        birth_date: r.birth_date,
        state: r.state,
        prescriber_id: prescriber_for_state(r.state),
    }
}

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const LOINC: &str = "http://loinc.org";
pub(crate) const UCUM: &str = "http://unitsofmeasure.org";
pub(crate) const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// The pharmacy every prescription names, as Canvas writes a pharmacy into `performer.display`.
pub(crate) const PHARMACY_DISPLAY: &str = "Name: Era Compounding Pharmacy|NCPDP ID: 0000000|Address: 1 Demo Way, Austin TX 78701|Phone: 5555550199|Fax: 5555550198";
const MEDICATION_SYSTEM: &str = "http://era-demo.test/fhir/CodeSystem/glp1-medication";

/// Comorbidities after the obesity diagnosis every patient has.
const COMORBIDITIES: &[(&str, &str)] = &[
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("I10", "Essential (primary) hypertension"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
];

/// The demo clinic's records, as of `now`.
pub(crate) fn store(now: DateTime<Utc>) -> Store {
    let mut store = Store::default();
    let today = now.date_naive();
    let at = |days_ago: i64, hour: u32| -> DateTime<Utc> {
        let day = today - Duration::days(days_ago);
        Utc.from_utc_datetime(&day.and_hms_opt(hour % 24, 0, 0).unwrap_or_default())
    };

    for p in practitioners() {
        add(&mut store, Kind::Practitioner, p, now);
    }
    add(&mut store, Kind::Questionnaire, questionnaire(), now);

    let demo = patients();
    for (row, p) in ROWS.iter().zip(&demo) {
        add(&mut store, Kind::Patient, patient(row, p), now);
    }
    for (i, (row, p)) in ROWS.iter().zip(&demo).enumerate() {
        let chart = Chart::new(i, row);
        let seen = at(i as i64 % 20 + 1, 15);
        add(&mut store, Kind::QuestionnaireResponse, chart.intake(p, seen), now);
        for c in chart.conditions(p, seen) {
            add(&mut store, Kind::Condition, c, now);
        }
        for o in chart.vitals(p, seen) {
            add(&mut store, Kind::Observation, o, now);
        }
        for m in chart.prescriptions(p, seen) {
            add(&mut store, Kind::MedicationRequest, m, now);
        }
    }

    let mut tasks = tasks(&demo, &at);
    tasks.sort_by(|a, b| a["authoredOn"].as_str().cmp(&b["authoredOn"].as_str()));
    for t in tasks {
        add(&mut store, Kind::Task, t, now);
    }
    for c in communications(&demo, &at) {
        add(&mut store, Kind::Communication, c, now);
    }
    for a in appointments(&demo, today) {
        add(&mut store, Kind::Appointment, a, now);
    }
    store
}

/// Adds through the same validation a client's create gets, so the seed cannot drift from the
/// rules; types clients cannot create are stored as given.
fn add(store: &mut Store, kind: Kind, resource: Value, now: DateTime<Utc>) {
    let resource = if kind.spec().create {
        match resources::create(kind, resource, store, now) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(resource_type = kind.name(), error = %e.text, "seed resource rejected");
                return;
            }
        }
    } else {
        resource
    };
    store.insert(kind, resource, now);
}

fn practitioners() -> Vec<Value> {
    let clinician = |id: &str, given: &str, family: &str, suffix: &str, npi: &str, email: &str| {
        json!({
            "resourceType": "Practitioner",
            "id": id,
            "identifier": [{ "system": NPI_SYSTEM, "value": npi }],
            "active": true,
            "name": [{ "use": "usual", "given": [given], "family": family, "suffix": [suffix] }],
            "telecom": [{ "system": "email", "value": email, "use": "work" }],
            "qualification": [{ "code": { "text": suffix } }],
            "extension": [{ "url": SCHEDULABLE_URL, "valueBoolean": true }],
        })
    };
    vec![
        clinician(
            ALI_NOLAN_ID,
            "Ali",
            "Nolan",
            "FNP-C",
            ALI_NOLAN_NPI,
            "ali.nolan@era-demo.test",
        ),
        clinician(
            NEELIMA_SINGH_ID,
            "Neelima",
            "Singh",
            "MD",
            NEELIMA_SINGH_NPI,
            "neelima.singh@era-demo.test",
        ),
        json!({
            "resourceType": "Practitioner",
            "id": CARE_TEAM_ID,
            "active": true,
            "name": [{ "use": "usual", "text": "Era Care Team", "given": ["Era"], "family": "Care Team" }],
            "telecom": [{ "system": "email", "value": "care@era-demo.test", "use": "work" }],
            "extension": [{ "url": SCHEDULABLE_URL, "valueBoolean": false }],
        }),
    ]
}

fn questionnaire() -> Value {
    let text = |link_id: &str, question: &str| json!({ "linkId": link_id, "text": question, "type": "string" });
    let integer = |link_id: &str, question: &str| json!({ "linkId": link_id, "text": question, "type": "integer" });
    let option = |code: &str, display: &str| json!({ "valueCoding": { "system": MEDICATION_SYSTEM, "code": code, "display": display } });
    json!({
        "resourceType": "Questionnaire",
        "id": INTAKE_QUESTIONNAIRE_ID,
        "name": "Era GLP-1 intake",
        "title": "Era GLP-1 intake",
        "status": "active",
        "item": [
            {
                "linkId": "medication",
                "text": "Which medication are you requesting?",
                "type": "choice",
                "repeats": false,
                "answerOption": [option("semaglutide", "Semaglutide"), option("tirzepatide", "Tirzepatide")],
            },
            integer("height_in", "What is your height in inches?"),
            integer("weight_lb", "What is your current weight in pounds?"),
            integer("goal_weight_lb", "What is your goal weight in pounds?"),
            text("glp1_history", "Have you taken a GLP-1 medication before? Which, and when?"),
            text("conditions", "Which medical conditions have you been diagnosed with?"),
            text("medications_current", "Which medications do you take now?"),
            text("allergies", "Do you have any allergies?"),
            text("pregnancy", "Are you pregnant, breastfeeding or planning a pregnancy?"),
            text("pancreatitis_history", "Have you ever had pancreatitis?"),
            text("thyroid_cancer_history", "Do you or a family member have a history of medullary thyroid cancer or MEN2?"),
            text("consent_telehealth", "Do you consent to treatment by telehealth?"),
        ],
    })
}

fn patient(row: &Row, p: &DemoPatient) -> Value {
    json!({
        "resourceType": "Patient",
        "id": p.id,
        "extension": [{
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
            "valueCode": if row.female { "F" } else { "M" },
        }],
        "active": true,
        "name": [{ "use": "official", "family": row.family, "given": [row.given] }],
        "gender": if row.female { "female" } else { "male" },
        "birthDate": row.birth_date,
        "telecom": [
            { "system": "email", "value": p.email, "use": "home", "rank": 1 },
            { "system": "phone", "value": p.phone, "use": "mobile", "rank": 1 },
        ],
        "address": [{
            "use": "home",
            "type": "both",
            "line": [row.line],
            "city": row.city,
            "state": row.state,
            "postalCode": row.zip,
            "country": "US",
        }],
    })
}

/// One patient's clinical picture, varied by position so the clinic looks lived in.
struct Chart {
    i: usize,
    female: bool,
    height_in: i64,
    weight_lb: i64,
    medication: &'static str,
}

impl Chart {
    fn new(i: usize, row: &Row) -> Self {
        let base_height = if row.female { 62 } else { 67 };
        Self {
            i,
            female: row.female,
            height_in: base_height + (i as i64 * 3) % 8,
            weight_lb: 190 + (i as i64 * 37) % 110,
            medication: if i.is_multiple_of(2) {
                "semaglutide"
            } else {
                "tirzepatide"
            },
        }
    }

    fn bmi(&self) -> f64 {
        let raw = 703.0 * self.weight_lb as f64 / (self.height_in * self.height_in) as f64;
        (raw * 10.0).round() / 10.0
    }

    fn comorbidities(&self) -> &'static [(&'static str, &'static str)] {
        let start = self.i % COMORBIDITIES.len();
        let n = self.i % 3;
        COMORBIDITIES
            .get(start..(start + n).min(COMORBIDITIES.len()))
            .unwrap_or_default()
    }

    fn obesity(&self) -> (&'static str, &'static str) {
        if self.bmi() >= 40.0 {
            ("E66.01", "Morbid (severe) obesity due to excess calories")
        } else {
            ("E66.9", "Obesity, unspecified")
        }
    }

    fn intake(&self, p: &DemoPatient, authored: DateTime<Utc>) -> Value {
        let conditions: Vec<&str> = std::iter::once(self.obesity().1)
            .chain(self.comorbidities().iter().map(|c| c.1))
            .collect();
        let current_meds = [
            "None",
            "Metformin 500 mg twice daily",
            "Lisinopril 10 mg daily",
            "Atorvastatin 20 mg daily",
        ][self.i % 4];
        let allergies = ["No known drug allergies", "Penicillin (hives)", "Sulfa drugs"][self.i % 3];
        let history = if self.i.is_multiple_of(3) {
            "Took semaglutide (Wegovy) for 6 months in 2024"
        } else {
            "None"
        };
        let pregnancy = if self.female { "No" } else { "Not applicable" };
        let string = |link_id: &str, answer: &str| json!({ "linkId": link_id, "answer": [{ "valueString": answer }] });
        let integer = |link_id: &str, answer: i64| json!({ "linkId": link_id, "answer": [{ "valueInteger": answer }] });
        json!({
            "resourceType": "QuestionnaireResponse",
            "id": seed_id("QuestionnaireResponse", &p.id),
            "questionnaire": format!("Questionnaire/{INTAKE_QUESTIONNAIRE_ID}"),
            "status": "completed",
            "subject": reference("Patient", &p.id),
            "author": reference("Patient", &p.id),
            "authored": timestamp(authored),
            "item": [
                json!({ "linkId": "medication", "answer": [{ "valueCoding": {
                    "system": MEDICATION_SYSTEM, "code": self.medication, "display": capitalised(self.medication),
                } }] }),
                integer("height_in", self.height_in),
                integer("weight_lb", self.weight_lb),
                integer("goal_weight_lb", self.weight_lb - 40 - (self.i as i64 % 4) * 10),
                string("glp1_history", history),
                string("conditions", &conditions.join("; ")),
                string("medications_current", current_meds),
                string("allergies", allergies),
                string("pregnancy", pregnancy),
                string("pancreatitis_history", "No"),
                string("thyroid_cancer_history", "No"),
                string("consent_telehealth", "Yes"),
            ],
        })
    }

    fn conditions(&self, p: &DemoPatient, recorded: DateTime<Utc>) -> Vec<Value> {
        std::iter::once(self.obesity())
            .chain(self.comorbidities().iter().copied())
            .map(|(code, display)| {
                json!({
                    "resourceType": "Condition",
                    "id": seed_id("Condition", &format!("{}:{code}", p.id)),
                    "clinicalStatus": { "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                        "display": "Active",
                    }] },
                    "verificationStatus": { "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                        "display": "Confirmed",
                    }] },
                    "category": [{ "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                        "display": "Encounter Diagnosis",
                    }] }],
                    "code": { "coding": [{ "system": ICD10, "code": code, "display": display }], "text": display },
                    "subject": reference("Patient", &p.id),
                    "recordedDate": timestamp(recorded),
                    "recorder": reference("Practitioner", p.prescriber_id),
                })
            })
            .collect()
    }

    /// Weight, height and BMI for everyone; blood pressure for two patients in three.
    fn vitals(&self, p: &DemoPatient, at: DateTime<Utc>) -> Vec<Value> {
        let vital = |key: &str, code: &str, display: &str, extra: Value| {
            let mut o = json!({
                "resourceType": "Observation",
                "id": seed_id("Observation", &format!("{}:{key}", p.id)),
                "status": "final",
                "category": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                    "display": "Vital Signs",
                }] }],
                "code": { "coding": [{ "system": LOINC, "code": code, "display": display }] },
                "subject": reference("Patient", &p.id),
                "effectiveDateTime": timestamp(at),
            });
            if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), extra) {
                o.extend(extra);
            }
            o
        };
        let quantity = |value: Value, unit: &str, code: &str| json!({ "value": value, "unit": unit, "system": UCUM, "code": code });
        let mut vitals = vec![
            vital(
                "weight",
                "29463-7",
                "Body weight",
                json!({ "valueQuantity": quantity(json!(self.weight_lb), "lb", "[lb_av]") }),
            ),
            vital(
                "height",
                "8302-2",
                "Body height",
                json!({ "valueQuantity": quantity(json!(self.height_in), "in", "[in_i]") }),
            ),
            vital(
                "bmi",
                "39156-5",
                "Body mass index (BMI) [Ratio]",
                json!({ "valueQuantity": quantity(json!(self.bmi()), "kg/m2", "kg/m2") }),
            ),
        ];
        if !self.i.is_multiple_of(3) {
            let systolic = 118 + (self.i * 13) % 30;
            let diastolic = 76 + (self.i * 7) % 16;
            let component = |code: &str, display: &str, value: usize| {
                json!({
                    "code": { "coding": [{ "system": LOINC, "code": code, "display": display }] },
                    "valueQuantity": quantity(json!(value), "mm[Hg]", "mm[Hg]"),
                })
            };
            vitals.push(vital(
                "blood-pressure",
                "85354-9",
                "Blood pressure panel with all children optional",
                json!({ "component": [
                    component("8480-6", "Systolic blood pressure", systolic),
                    component("8462-4", "Diastolic blood pressure", diastolic),
                ] }),
            ));
        }
        vitals
    }

    /// None, one active, a stopped starter dose then an active one, or one stopped, in turn.
    fn prescriptions(&self, p: &DemoPatient, authored: DateTime<Utc>) -> Vec<Value> {
        let earlier = authored - Duration::days(35);
        match self.i % 4 {
            1 => vec![self.prescription(p, "current", "active", authored, 1)],
            2 => vec![
                self.prescription(p, "starter", "stopped", earlier, 0),
                self.prescription(p, "current", "active", authored, 1),
            ],
            3 => vec![self.prescription(p, "starter", "stopped", earlier, 0)],
            _ => Vec::new(),
        }
    }

    fn prescription(&self, p: &DemoPatient, key: &str, status: &str, authored: DateTime<Utc>, step: usize) -> Value {
        let (rxcui, product, doses) = if self.medication == "semaglutide" {
            (
                "1991302",
                "Semaglutide 2.5 mg/mL subcutaneous solution (compounded)",
                [0.25, 0.5],
            )
        } else {
            (
                "2601723",
                "Tirzepatide 10 mg/mL subcutaneous solution (compounded)",
                [2.5, 5.0],
            )
        };
        let dose = doses[step.min(1)];
        json!({
            "resourceType": "MedicationRequest",
            "id": seed_id("MedicationRequest", &format!("{}:{key}", p.id)),
            "status": status,
            "intent": "order",
            "category": outpatient_category(),
            "reportedBoolean": false,
            "medicationCodeableConcept": {
                "coding": [{ "system": RXNORM, "code": rxcui, "display": self.medication }],
                "text": product,
            },
            "subject": reference("Patient", &p.id),
            "authoredOn": timestamp(authored),
            "requester": reference("Practitioner", p.prescriber_id),
            "reasonCode": [{ "coding": [{ "system": ICD10, "code": self.obesity().0, "display": self.obesity().1 }] }],
            "dosageInstruction": [{
                "text": format!("Inject {dose} mg subcutaneously once weekly"),
                "timing": weekly(),
                "doseAndRate": [{ "doseQuantity": { "value": dose, "unit": "mg" } }],
            }],
            "dispenseRequest": {
                "numberOfRepeatsAllowed": 2,
                "quantity": { "value": 1, "unit": "mL" },
                "expectedSupplyDuration": { "value": 28, "unit": "days", "system": UCUM, "code": "d" },
                "performer": { "display": PHARMACY_DISPLAY },
            },
            "substitution": { "allowedBoolean": false },
        })
    }
}

/// A MedicationRequest's `category`: every prescription of the clinic is outpatient.
pub(crate) fn outpatient_category() -> Value {
    json!([{ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
        "code": "outpatient",
        "display": "Outpatient",
    }] }])
}

/// A weekly injection's `timing`.
pub(crate) fn weekly() -> Value {
    json!({ "repeat": { "frequency": 1, "period": 1, "periodUnit": "wk" } })
}

fn label(text: &str) -> Value {
    json!([{ "type": { "text": "label" }, "valueString": text }])
}

/// The Rx Review queue: open reviews for the first [`OPEN_RX_REVIEWS`] patients, three completed
/// ones, and one open task with another label, so filters have something to exclude.
fn tasks(demo: &[DemoPatient], at: &impl Fn(i64, u32) -> DateTime<Utc>) -> Vec<Value> {
    let task = |p: &DemoPatient, key: &str, status: &str, description: &str, authored: DateTime<Utc>| {
        json!({
            "resourceType": "Task",
            "id": seed_id("Task", &format!("{key}:{}", p.id)),
            "status": status,
            "intent": "unknown",
            "description": description,
            "for": reference("Patient", &p.id),
            "requester": reference("Practitioner", p.prescriber_id),
            "owner": reference("Practitioner", p.prescriber_id),
            "authoredOn": timestamp(authored),
            "restriction": { "period": { "end": (authored + Duration::days(2)).date_naive().to_string() } },
            "priority": "routine",
            "input": label(if key == "follow-up" { "Follow up" } else { RX_REVIEW_LABEL }),
        })
    };
    let mut tasks = Vec::new();
    for (i, p) in demo.iter().enumerate().take(OPEN_RX_REVIEWS) {
        let authored = at(i as i64 % 14, 9 + i as u32 % 9);
        let mut t = task(p, "rx-review", "requested", RX_REVIEW_LABEL, authored);
        if i % 5 == 0 {
            t["priority"] = json!("urgent");
        }
        t["note"] = json!([{
            "text": "Intake complete; ready for prescription review.",
            "time": timestamp(authored),
            "authorReference": reference("Practitioner", CARE_TEAM_ID),
        }]);
        tasks.push(t);
    }
    for (i, p) in demo.iter().enumerate().skip(OPEN_RX_REVIEWS).take(3) {
        let authored = at(20 + i as i64, 10);
        let mut t = task(p, "rx-review", "completed", RX_REVIEW_LABEL, authored);
        t["note"] = json!([{
            "text": "Reviewed and prescribed.",
            "time": timestamp(authored + Duration::days(1)),
            "authorReference": reference("Practitioner", p.prescriber_id),
        }]);
        tasks.push(t);
    }
    if let Some(p) = demo.get(OPEN_RX_REVIEWS + 3) {
        tasks.push(task(
            p,
            "follow-up",
            "requested",
            "Follow up on side effects",
            at(1, 11),
        ));
    }
    tasks
}

fn communications(demo: &[DemoPatient], at: &impl Fn(i64, u32) -> DateTime<Utc>) -> Vec<Value> {
    const MESSAGES: &[(bool, &str)] = &[
        (
            true,
            "Hi, I submitted my intake. When will my prescription be reviewed?",
        ),
        (
            false,
            "Thanks for your intake. Your prescriber will review it within two business days.",
        ),
        (true, "I have some nausea after my second dose. Is that normal?"),
        (
            false,
            "Mild nausea is common early on. Eat smaller meals and tell us if it persists.",
        ),
        (true, "Can I move my follow-up visit to next week?"),
    ];
    MESSAGES
        .iter()
        .zip(demo)
        .enumerate()
        .map(|(i, ((from_patient, text), p))| {
            let (patient, practitioner) = (reference("Patient", &p.id), reference("Practitioner", p.prescriber_id));
            let (sender, recipient) = if *from_patient {
                (patient, practitioner)
            } else {
                (practitioner, patient)
            };
            json!({
                "resourceType": "Communication",
                "id": seed_id("Communication", &format!("{i}:{}", p.id)),
                "status": "completed",
                "sender": sender,
                "recipient": [recipient],
                "payload": [{ "contentString": text }],
                "sent": timestamp(at(i as i64 + 1, 16)),
            })
        })
        .collect()
}

/// Two booked telehealth visits on coming weekdays, one per prescriber, so slot searches show
/// booked time missing.
fn appointments(demo: &[DemoPatient], today: NaiveDate) -> Vec<Value> {
    let weekday_from = |days: i64| {
        let mut d = today + Duration::days(days);
        while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            d += Duration::days(1);
        }
        d
    };
    let ali_patient = demo.iter().find(|p| p.prescriber_id == ALI_NOLAN_ID);
    let neelima_patient = demo.iter().find(|p| p.prescriber_id == NEELIMA_SINGH_ID);
    [
        (ali_patient, weekday_from(2), (10, 0), (10, 20)),
        (neelima_patient, weekday_from(3), (14, 0), (14, 20)),
    ]
    .into_iter()
    .filter_map(|(p, day, start, end)| {
        let p = p?;
        // Office hours are the clinic's wall clock: the offset is that day's.
        let at = |(h, m): (u32, u32)| resources::office_time(day, h, m).map(|t| t.to_rfc3339());
        let (start, end) = (at(start)?, at(end)?);
        let endpoint = format!("https://meet.era-demo.test/{}", &p.id[..12]);
        Some(json!({
            "resourceType": "Appointment",
            "id": seed_id("Appointment", &format!("{day}:{}", p.id)),
            "status": "booked",
            "appointmentType": { "coding": [{
                "system": "http://snomed.info/sct",
                "code": "448337001",
                "display": "Telemedicine consultation with patient",
            }] },
            "reasonCode": [{ "text": "GLP-1 follow-up visit" }],
            "description": "GLP-1 follow-up visit",
            "start": start,
            "end": end,
            "contained": [{ "resourceType": "Endpoint", "id": "appointment-meeting-endpoint-0", "address": endpoint }],
            "supportingInformation": [
                { "reference": format!("Location/{LOCATION_ID}") },
                { "reference": "#appointment-meeting-endpoint-0", "type": "Endpoint" },
            ],
            "participant": [
                { "actor": reference("Practitioner", p.prescriber_id), "status": "accepted" },
                { "actor": reference("Patient", &p.id), "status": "accepted" },
            ],
        }))
    })
    .collect()
}

/// "semaglutide" -> "Semaglutide", the display of the questionnaire's options.
fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ids_are_the_derived_ones() {
        assert_eq!(seed_id("Practitioner", "ali-nolan"), ALI_NOLAN_ID);
        assert_eq!(seed_id("Practitioner", "neelima-singh"), NEELIMA_SINGH_ID);
        assert_eq!(seed_id("Practitioner", "era-care-team"), CARE_TEAM_ID);
        assert_eq!(seed_id("Questionnaire", "era-glp1-intake"), INTAKE_QUESTIONNAIRE_ID);
    }

    #[test]
    fn every_seed_resource_passes_validation() {
        let store = store(Utc::now());
        let count = |kind| store.all(kind).len();
        assert_eq!(count(Kind::Practitioner), 3);
        assert_eq!(count(Kind::Questionnaire), 1);
        assert_eq!(count(Kind::Patient), ROWS.len());
        assert!(ROWS.len() >= 34);
        assert_eq!(count(Kind::QuestionnaireResponse), ROWS.len());
        assert_eq!(count(Kind::Task), OPEN_RX_REVIEWS + 4);
        assert_eq!(count(Kind::Communication), 5);
        assert_eq!(count(Kind::Appointment), 2);
        assert!(count(Kind::Observation) >= 3 * ROWS.len());
        assert!(count(Kind::Condition) >= ROWS.len());
        assert!(count(Kind::MedicationRequest) > 0);
    }

    #[test]
    fn the_seed_is_the_same_every_time() {
        let ids = |s: &Store| -> Vec<String> {
            s.all(Kind::Task)
                .iter()
                .map(|t| t["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(ids(&store(Utc::now())), ids(&store(Utc::now())));
    }

    #[test]
    fn patients_span_both_prescribers_states() {
        let all = patients();
        assert!(all.iter().filter(|p| p.prescriber_id == ALI_NOLAN_ID).count() >= 12);
        assert!(all.iter().filter(|p| p.prescriber_id == NEELIMA_SINGH_ID).count() >= 10);
        let mut ids: Vec<_> = all.iter().map(|p| p.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }
}
