//! Compiles every `era/**/*.proto` with protox (pure Rust, so no system `protoc`) and writes the
//! descriptor set beside the generated code for server reflection.

use std::{
    fs,
    path::{Path, PathBuf},
};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    collect_protos(&root.join("era"), &mut files)?;
    files.sort();
    // tonic-prost-build does not print these itself; without them new or edited protos are ignored.
    println!("cargo:rerun-if-changed={}", root.join("era").display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    fs::write(out.join("era_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure().include_file("mod.rs").compile_fds(fds)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
