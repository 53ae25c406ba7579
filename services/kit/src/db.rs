//! Each service owns one PostgreSQL database and runs only its own migrations in it.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgConnection, PgPool,
};

use crate::config::DatabaseConfig;

pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())
        .context("DATABASE_URL is not a valid PostgreSQL URL")?
        // Statement logging would put query parameters (possibly PHI) in the logs.
        .disable_statement_logging();
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("cannot connect to DATABASE_URL")
}

/// A pool whose every connection runs as `role` (SET ROLE as it connects), with `pool`'s settings.
/// The login role keeps owning the tables and runs the migrations; the service's own queries get only
/// what `role` was granted, so a bug cannot rewrite an audit trail. It is not a wall against SQL an
/// attacker could run in the session (which could reset the role): a deployment that wants one
/// logs the service in as a role that is only a member (see the README's known limits).
pub fn as_role(pool: &PgPool, role: &'static str) -> PgPool {
    let options = (*pool.connect_options()).clone();
    PgPoolOptions::new()
        .max_connections(pool.options().get_max_connections())
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::query(&format!("set role {}", quote_ident(role)))
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_lazy_with(options)
}

/// Creates the URL's database when it does not exist yet (the dev launcher and tests use this; in
/// production the databases are provisioned).
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).context("not a valid PostgreSQL URL")?;
    let name = options.get_database().context("the URL names no database")?.to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres").disable_statement_logging())
        .await
        .context("cannot connect to the server's `postgres` database")?;
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let sql = format!("create database {}", quote_ident(&name));
        if let Err(e) = sqlx::query(&sql).execute(&mut admin).await {
            // Two starters racing: the loser finds it created.
            let code = e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned()));
            if code.as_deref() != Some("42P04") && code.as_deref() != Some("23505") {
                return Err(e).context("cannot create the database");
            }
        }
    }
    admin.close().await.ok();
    Ok(())
}

pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator.run(pool).await.context("migrations failed")
}

/// Quotes an identifier for the few statements (CREATE/DROP DATABASE) that cannot take parameters.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Calls `reload` whenever `channel` is notified (`pg_notify`) and every `every` in case a
/// notification was missed while the listening connection was down, for as long as `owner` lives.
/// In-memory caches (the routing matrix, revoked tokens) stay in step across replicas this way.
///
/// It returns once it is listening (or has failed to, and falls back to polling), so a caller that
/// loads its cache afterwards misses no change made in between.
pub async fn spawn_change_listener<T, F, Fut>(
    pool: PgPool,
    channel: &'static str,
    every: Duration,
    owner: std::sync::Weak<T>,
    reload: F,
) where
    T: Send + Sync + 'static,
    F: Fn(std::sync::Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listen = move |pool: PgPool| async move {
        let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
        l.listen(channel).await?;
        Ok::<_, sqlx::Error>(l)
    };
    let mut listener = match listen(pool.clone()).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, channel, "cannot listen for changes; polling meanwhile");
            None
        }
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            if listener.is_none() {
                // (Re)connect; until it works, the tick is the only trigger.
                match listen(pool.clone()).await {
                    Ok(l) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %e, channel, "cannot listen for changes; polling meanwhile"),
                }
            }
            let notified = async {
                match listener.as_mut() {
                    // A dropped connection is re-established by PgListener on the next recv.
                    Some(l) => l.recv().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ok = notified => if !ok { tokio::time::sleep(Duration::from_secs(1)).await },
                _ = tick.tick() => {},
            }
            let Some(owner) = owner.upgrade() else { return };
            reload(owner).await;
        }
    });
}
