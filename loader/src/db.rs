//! The database connection: a URL (`--database-url` / `DATABASE_URL`) or libpq's `PG*` variables.

use anyhow::{Context, Result};
use tokio_postgres::{Client, Config, NoTls};

/// Connect, spawning the connection task. Errors say where we tried to connect.
pub async fn connect(url: Option<&str>) -> Result<Client> {
    let config = match url {
        Some(url) => url.parse::<Config>().with_context(|| "invalid database URL")?,
        None => config_from_pg_env(),
    };
    let target = describe(&config);
    let (client, connection) =
        config.connect(NoTls).await.with_context(|| format!("cannot connect to the database at {target}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "database connection closed");
        }
    });
    // resi_pg as an extension (native, or the portable edition through pg_tle), or the portable
    // edition's plain migration (schema resi with resi.edition(); docs/hosted.md).
    let installed: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'resi_pg')
                    OR to_regprocedure('resi.edition()') IS NOT NULL",
            &[],
        )
        .await
        .with_context(|| format!("cannot query the database at {target}"))?
        .get(0);
    if !installed {
        anyhow::bail!(
            "the database at {target} has no resi_pg: run CREATE EXTENSION resi_pg first \
             (or, on hosted PostgreSQL, install the portable edition: docs/hosted.md)"
        );
    }
    Ok(client)
}

/// libpq's defaults: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (host defaults to the
/// local socket directory, user to the login name, database to the user).
fn config_from_pg_env() -> Config {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut config = Config::new();
    for host in var("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into()).split(',') {
        config.host(host);
    }
    if let Some(port) = var("PGPORT").and_then(|p| p.parse().ok()) {
        config.port(port);
    }
    let user = var("PGUSER").or_else(|| var("USER")).unwrap_or_else(|| "postgres".into());
    config.user(&user);
    if let Some(password) = var("PGPASSWORD") {
        config.password(password);
    }
    config.dbname(var("PGDATABASE").unwrap_or(user));
    config.application_name("resi-loader");
    config
}

fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{}:{port}/{}", hosts.join(","), config.get_dbname().unwrap_or("?"))
}
