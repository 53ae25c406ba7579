//! A PostgreSQL cluster of the dev launcher's own under `.era/`, for a machine where `DATABASE_URL`
//! is unset. Built from the installed server binaries; nothing is downloaded.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};

/// The port the dev cluster listens on: not 5432, so it never collides with a system server.
pub const DEV_PORT: u16 = 54329;

pub const INSTALL_HINT: &str =
    "PostgreSQL is not installed: install it (Debian/Ubuntu: `sudo apt-get install postgresql`, \
macOS: `brew install postgresql`) or set DATABASE_URL to a server where era-dev may create databases";

#[derive(Debug)]
pub struct LocalCluster {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    // Debian installs the server outside PATH, one directory per major version; take the newest.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl LocalCluster {
    /// Initialises (once) and starts the cluster in `dir`, returning it and its server URL.
    pub fn start(dir: &Path) -> anyhow::Result<(Self, String)> {
        let bin = find_bin_dir().context(INSTALL_HINT)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        // initdb refuses to run as root; the server binaries then run as the `postgres` user.
        let as_postgres = is_root();
        let cluster = Self {
            bin,
            data: dir.join("data"),
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir))?;
        }
        if !cluster.data.join("PG_VERSION").exists() {
            let mut cmd = cluster.command("initdb");
            cmd.arg("-D")
                .arg(&cluster.data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
            run(&mut cmd).context("initdb failed")?;
        }
        if !cluster.is_running() {
            let options = format!("-p {DEV_PORT} -c listen_addresses=127.0.0.1 -k {}", dir.display());
            let mut cmd = cluster.command("pg_ctl");
            cmd.arg("-D")
                .arg(&cluster.data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-o", &options, "-w", "start"]);
            run(&mut cmd)
                .with_context(|| format!("the dev PostgreSQL did not start; see {}/server.log", dir.display()))?;
        }
        Ok((cluster, format!("postgres://postgres@127.0.0.1:{DEV_PORT}/postgres")))
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn is_running(&self) -> bool {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.data).arg("status");
        cmd.output().map(|o| o.status.success()).unwrap_or(false)
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]);
        run(&mut cmd)
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
