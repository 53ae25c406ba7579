//! Intake records against a real database: key rotation and the service role's limits.

use std::collections::BTreeMap;

use chrono::Utc;
use era_canvas::{
    store::{NewRecord, Store},
    Error,
};
use era_kit::{sealing::Keyring, testing::TestDb};
use era_proto::canvas::v1 as pb;

const INDEX_KEY: &[u8] = b"blind-index-key-for-tests-0123456789";

fn ring(versions: &[u8], active: u32) -> Keyring {
    let keys: BTreeMap<u32, [u8; 32]> = versions.iter().map(|v| (u32::from(*v), [*v; 32])).collect();
    Keyring::new(keys, active, INDEX_KEY)
}

fn submission(given: &str) -> pb::IntakeSubmission {
    pb::IntakeSubmission {
        demographics: Some(pb::IntakeDemographics {
            given_name: given.into(),
            family_name: "Rotation".into(),
            birth_date: "1970-01-02".into(),
            email: format!("{given}@example.test"),
            ..Default::default()
        }),
        medication: "semaglutide".into(),
        ..Default::default()
    }
}

async fn store(db: &TestDb, keys: Keyring, submission_id: &str, given: &str) -> pb::IntakeRecord {
    let s = submission(given);
    let (record, existing) = Store::new(db.pool.clone(), keys)
        .insert_record(NewRecord {
            submission_id,
            canvas_patient_id: "patient-1",
            submission: &s,
            raw_json: "{}",
            submitted_at: Utc::now(),
        })
        .await
        .unwrap();
    assert!(!existing);
    record
}

#[tokio::test]
async fn a_record_written_under_v1_reads_after_v2_becomes_active() {
    let db = TestDb::new(&era_canvas::MIGRATOR).await;
    let old = store(&db, ring(&[1], 1), "s-1", "Vone").await;
    assert_eq!(old.key_version, 1);

    let rotated = Store::new(db.pool.clone(), ring(&[1, 2], 2));
    let read = rotated.get_record(old.id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(read.submission.unwrap().demographics.unwrap().given_name, "Vone");
    let new = store(&db, ring(&[1, 2], 2), "s-2", "Vtwo").await;
    assert_eq!(new.key_version, 2);

    // Blind indexes do not depend on the record keys: email search finds both.
    let filter = era_canvas::store::RecordFilter {
        email: Some("VONE@example.test".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(rotated.list_records(&filter).await.unwrap().records.len(), 1);

    // With v1 retired, its record is an integrity error, not garbage.
    let retired = Store::new(db.pool.clone(), ring(&[2], 2));
    let err = retired.get_record(old.id.parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::RecordIntegrity(_)), "{err:?}");
    assert!(retired.get_record(new.id.parse().unwrap()).await.unwrap().is_some());
}

#[tokio::test]
async fn the_same_submission_twice_is_one_record_and_different_content_is_refused() {
    let db = TestDb::new(&era_canvas::MIGRATOR).await;
    let keys = ring(&[1], 1);
    let first = store(&db, keys.clone(), "s-1", "Same").await;
    let s = submission("Same");
    let again = Store::new(db.pool.clone(), keys.clone())
        .insert_record(NewRecord {
            submission_id: "s-1",
            canvas_patient_id: "patient-1",
            submission: &s,
            raw_json: "{}",
            submitted_at: Utc::now(),
        })
        .await
        .unwrap();
    assert!(again.1);
    assert_eq!(again.0.id, first.id);
    let other = submission("Other");
    let err = Store::new(db.pool.clone(), keys)
        .insert_record(NewRecord {
            submission_id: "s-1",
            canvas_patient_id: "patient-1",
            submission: &other,
            raw_json: "{}",
            submitted_at: Utc::now(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyReused(_)), "{err:?}");
    let count: i64 = sqlx::query_scalar("select count(*) from intake_records")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}
