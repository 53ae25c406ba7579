#![allow(
    clippy::print_stdout,
    reason = "cargo reads a build script's directives from its output"
)]

//! Fetches the API viewer the edge serves at `/docs` (Swagger UI, `swagger-ui-dist` at the version
//! `docs/package-lock.json` pins) from the npm registry into `OUT_DIR`, and embeds it, so the running
//! edge needs no asset from anywhere else. `ERA_DOCS_ASSETS_DIR` names an unpacked `swagger-ui-dist`
//! to use instead (offline builds). Without npm or the registry the edge still builds; `/docs` then
//! says the viewer is missing and points at `/openapi.json`.

use std::{
    env,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

/// The files of swagger-ui-dist the page uses, with their content types.
const FILES: &[(&str, &str)] = &[
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("swagger-ui.css", "text/css; charset=utf-8"),
];

fn main() {
    println!("cargo:rerun-if-changed=docs/package.json");
    println!("cargo:rerun-if-changed=docs/package-lock.json");
    println!("cargo:rerun-if-env-changed=ERA_DOCS_ASSETS_DIR");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = match env::var("ERA_DOCS_ASSETS_DIR") {
        Ok(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => fetch(&out),
    };
    let mut assets = String::from("/// The API viewer's files: (name, content type, bytes).\npub(super) const ASSETS: &[(&str, &str, &[u8])] = &[\n");
    if let Some(dist) = dist.filter(|d| FILES.iter().all(|(f, _)| d.join(f).is_file())) {
        for (file, content_type) in FILES {
            let path = dist.join(file);
            let _ = writeln!(
                assets,
                "    ({file:?}, {content_type:?}, include_bytes!({:?})),",
                path.display().to_string()
            );
        }
    } else {
        println!("cargo:warning=the /docs viewer (swagger-ui-dist) was not fetched: /docs will point at /openapi.json");
    }
    assets.push_str("];\n");
    std::fs::write(out.join("docs_assets.rs"), assets).expect("OUT_DIR is writable");
}

/// `npm ci` of docs/ into OUT_DIR, scripts off (a dependency's install script only reports usage).
fn fetch(out: &Path) -> Option<PathBuf> {
    let dir = out.join("docs");
    std::fs::create_dir_all(&dir).ok()?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(Path::new("docs").join(file), dir.join(file)).ok()?;
    }
    let dist = dir.join("node_modules").join("swagger-ui-dist");
    if FILES.iter().all(|(f, _)| dist.join(f).is_file()) {
        return Some(dist);
    }
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .env("SCARF_ANALYTICS", "false")
        .status()
        .ok()?;
    status.success().then_some(dist)
}
