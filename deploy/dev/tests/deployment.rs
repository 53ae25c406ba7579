//! The ECS task definitions (`deploy/ecs/*.json`) configure their binaries in production: every
//! variable is one the binary reads, and the whole configuration passes the checks the binary makes
//! at start (secrets from Secrets Manager stood in for by well-formed values, the mesh certificate
//! by a throwaway one). What a task could only learn at run time (a host answering) is not checked.

use std::path::Path;

use clap::{Args as _, FromArgMatches as _};
use era_kit::{cli::check_env, dev_ca::DevCa};

/// A well-formed stand-in for a secret the task takes from Secrets Manager.
fn secret_for(var: &str, ca: &DevCa) -> String {
    let random = |n: usize| {
        (0..n)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect::<String>()
    };
    match var {
        "MESH_TLS_CA" => ca.ca_pem.clone(),
        "MESH_TLS_CERT" => ca.cert_pem.clone(),
        "MESH_TLS_KEY" => ca.key_pem.clone(),
        "DATABASE_URL" => "postgres://era:secret@db.era.internal:5432/era".into(),
        v if v.ends_with("_KEYS") => "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        "TWILIO_ACCOUNT_SID" => format!("AC{}", "0".repeat(32)),
        "TWILIO_MESSAGING_SERVICE_SID" => format!("MG{}", "0".repeat(32)),
        "HUBSPOT_SENDER_ACTOR_ID" => "A-1".into(),
        "CANVAS_CLIENT_ID" => "era-production".into(),
        "STRIPE_SECRET_KEY" => format!("sk_live_{}", random(24)),
        // Each secret its own value: several must differ from one another.
        other => format!("{other}-{}", random(40)),
    }
}

fn task(file: &Path, ca: &DevCa) -> (String, Vec<(String, String)>) {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let container = &doc["containerDefinitions"][0];
    let binary = container["command"][0].as_str().unwrap().to_owned();
    let mut env: Vec<(String, String)> = container["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for s in container["secrets"].as_array().unwrap() {
        let var = s["name"].as_str().unwrap();
        env.push((var.to_owned(), secret_for(var, ca)));
    }
    (binary, env)
}

#[test]
fn every_ecs_task_configures_its_binary_for_production() {
    let ca = DevCa::generate().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ecs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        let (binary, env) = task(&file, &ca);
        assert!(
            env.iter().any(|(k, v)| k == "ERA_ENV" && v == "production"),
            "{} runs in production",
            file.display()
        );
        let checked_env = match binary.as_str() {
            "era-canvas" => check_env::<era_canvas::Binary>(&env),
            "era-payments" => check_env::<era_payments::Binary>(&env),
            "era-pharmacy-routing" => check_env::<era_pharmacy_routing::Binary>(&env),
            "era-scheduling" => check_env::<era_scheduling::Binary>(&env),
            "era-notifications" => check_env::<era_notifications::Binary>(&env),
            "era-edge" => {
                let cmd = era_edge::Config::augment_args(clap::Command::new("era-edge"));
                era_kit::cli::args_from_env(&cmd, &env).and_then(|args| {
                    let matches = cmd.try_get_matches_from(args).map_err(|e| e.to_string())?;
                    let config = era_edge::Config::from_arg_matches(&matches).map_err(|e| e.to_string())?;
                    config.validate().map_err(|e| e.to_string())
                })
            }
            other => panic!("{}: unknown binary {other}", file.display()),
        };
        assert_eq!(checked_env, Ok(()), "{}", file.display());
        checked += 1;
    }
    assert_eq!(checked, 6, "one task per component");
}
