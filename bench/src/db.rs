//! Databases of the bench cluster: one fresh database per measurement (or per run where a
//! run must start empty), dropped afterwards.

use anyhow::{Context, Result};
use postgres::{Client, NoTls};
use std::time::{Duration, Instant};

pub fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls).with_context(|| format!("cannot connect to {url}"))
}

/// `url` with its database replaced by `database`.
pub fn url_for(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// `url` connecting as `user` (no password: the bench cluster trusts local connections).
pub fn url_as(url: &str, user: &str) -> String {
    let authority = url.find("://").map(|i| i + 3).unwrap_or(0);
    let host = url[authority..].find(['/', '?']).map(|end| authority + end).unwrap_or(url.len());
    let at = url[authority..host].rfind('@').map(|at| authority + at + 1).unwrap_or(authority);
    format!("{}{user}@{}", &url[..authority], &url[at..])
}

/// Which `resi_pg` a fresh database gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// This build's default version.
    Current,
    /// An earlier release's frozen install script (sql/install/), on this build's library.
    Frozen(&'static str),
    /// The portable edition of this checkout: resi-package's plain migration of `sql/`, run by
    /// [`INSTALLER`] (no superuser, CREATE on that database only), as on hosted PostgreSQL.
    Portable,
}

/// The role that installs (and so owns) the portable edition in a bench database: LOGIN,
/// NOSUPERUSER, NOCREATEROLE, NOCREATEDB; it gets CREATE on each portable database.
pub const INSTALLER: &str = "resi_bench_installer";

/// The bench cluster, reached through its maintenance database (the `--database-url`).
pub struct Cluster {
    url: String,
    admin: Client,
    /// The portable edition's migration, assembled from `sql/` at its first use, so that every
    /// portable database of a run gets the same script.
    portable: Option<String>,
}

impl Cluster {
    pub fn open(url: &str) -> Result<Cluster> {
        Ok(Cluster { url: url.to_owned(), admin: connect(url)?, portable: None })
    }

    /// The URL of `database` for [`INSTALLER`], the owner of a portable edition.
    pub fn installer_url(&self, database: &str) -> String {
        url_as(&url_for(&self.url, database), INSTALLER)
    }

    /// The portable edition's plain migration, assembled once per run.
    pub fn portable_migration(&mut self) -> Result<&str> {
        if self.portable.is_none() {
            let script = resi_package::migration(&resi_package::Repository::this())
                .context("assemble the portable edition (resi-package)")?;
            self.portable = Some(script);
        }
        Ok(self.portable.as_deref().expect("assembled above"))
    }

    pub fn admin(&mut self) -> &mut Client {
        &mut self.admin
    }

    /// An empty database `name` (dropped first if it exists), with `CREATE EXTENSION resi_pg`
    /// when `extension`. Returns its URL.
    pub fn fresh_database(&mut self, name: &str, extension: bool) -> Result<String> {
        self.fresh_database_at(name, extension.then_some(Release::Current))
    }

    /// [`Cluster::fresh_database`] with `resi_pg` at `release` (none: no extension).
    pub fn fresh_database_at(&mut self, name: &str, release: Option<Release>) -> Result<String> {
        self.drop_database(name)?;
        self.admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let url = url_for(&self.url, name);
        let create = match release {
            None => return Ok(url),
            Some(Release::Current) => "CREATE EXTENSION resi_pg".to_string(),
            Some(Release::Frozen(version)) => format!("CREATE EXTENSION resi_pg VERSION '{version}'"),
            Some(Release::Portable) => {
                self.install_portable(name)?;
                return Ok(url);
            }
        };
        connect(&url)?.batch_execute(&create).with_context(|| create.clone())?;
        Ok(url)
    }

    /// The portable edition's migration in database `name`, run by [`INSTALLER`] (created on
    /// first use; it owns nothing outside the bench's portable databases).
    fn install_portable(&mut self, name: &str) -> Result<()> {
        self.admin.batch_execute(&format!(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{INSTALLER}') THEN
                     CREATE ROLE {INSTALLER} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB;
                 END IF;
             END $$;
             GRANT CREATE ON DATABASE {name} TO {INSTALLER}"
        ))?;
        let installer = self.installer_url(name);
        let script = self.portable_migration()?;
        connect(&installer)?.batch_execute(script).context("the portable edition's migration")?;
        Ok(())
    }

    /// Drop `name`, ending any session still in it.
    pub fn drop_database(&mut self, name: &str) -> Result<()> {
        self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        Ok(())
    }

    pub fn server_version(&mut self) -> Result<String> {
        Ok(self.admin.query_one("SELECT version()", &[])?.get(0))
    }

    /// Size and modification time of the installed `resi_pg.so`: if they change during a
    /// run, someone reinstalled the extension (e.g. a debug build) under the bench.
    pub fn installed_library(&mut self) -> Result<String> {
        let dir: String = self.admin.query_one("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'", &[])?.get(0);
        let path = std::path::Path::new(&dir).join("resi_pg.so");
        let meta = std::fs::metadata(&path).with_context(|| format!("no {}", path.display()))?;
        let modified = meta.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_secs();
        Ok(format!(
            "{} ({} bytes, modified {})",
            path.display(),
            meta.len(),
            crate::generate::timestamp_text(std::time::UNIX_EPOCH + Duration::from_secs(modified),)
        ))
    }

    /// The postmaster's process id (the parent of this session's backend).
    pub fn postmaster_pid(&mut self) -> Result<u32> {
        let backend: i32 = self.admin.query_one("SELECT pg_backend_pid()", &[])?.get(0);
        crate::machine::parent_pid(backend as u32).context("the backend's parent process")
    }
}

/// Run `f` and measure its wall-clock time.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let start = Instant::now();
    let value = f()?;
    Ok((start.elapsed(), value))
}

/// Time one query returning a single row of (bigint, bigint): a count and a checksum.
pub fn timed_checksum(client: &mut Client, sql: &str) -> Result<(Duration, (i64, i64))> {
    timed(|| {
        let row = client.query_one(sql, &[]).with_context(|| format!("query failed: {sql}"))?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    })
}

#[cfg(test)]
mod tests {
    use super::{url_as, url_for};

    #[test]
    fn replaces_the_user() {
        assert_eq!(url_as("postgresql://postgres@127.0.0.1:5432/b", "r"), "postgresql://r@127.0.0.1:5432/b");
        assert_eq!(url_as("postgresql://u:pw@h/b?sslmode=disable", "r"), "postgresql://r@h/b?sslmode=disable");
        assert_eq!(url_as("postgresql://127.0.0.1:5432/b", "r"), "postgresql://r@127.0.0.1:5432/b");
        assert_eq!(url_as("postgresql://h/b?x=a@b", "r"), "postgresql://r@h/b?x=a@b");
    }

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            url_for("postgresql://postgres@127.0.0.1:5432/postgres", "b"),
            "postgresql://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(url_for("postgresql://postgres@127.0.0.1:5432", "b"), "postgresql://postgres@127.0.0.1:5432/b");
        assert_eq!(url_for("postgres://u@h/db?sslmode=disable", "b"), "postgres://u@h/b?sslmode=disable");
    }
}
