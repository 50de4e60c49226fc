//! `resi-package --out DIR`: the portable edition's two packages, from this repository's sql/.
//!
//! Writes `DIR/portable/resi_pg--VERSION.pg_tle.sql` (pg_tle: installs VERSION, and registers
//! the update paths from earlier releases), `DIR/portable/dbdev/` (the same for database.dev:
//! `dbdev publish` from that folder), `DIR/portable/resi_pg--VERSION.migration.sql` (plain
//! migration) and, for each update delta of `sql/upgrade/portable/`,
//! `DIR/portable/resi_pg--FROM--TO.migration.sql` (the plain migration's update). `make release`
//! adds the native extension's files beside them.

use resi_package::{dbdev_package, migration, pg_tle_install, update_migrations, Repository};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: resi-package --out DIR");
            return ExitCode::from(2);
        }
    };
    match write(&out) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("resi-package: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(out: &std::path::Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let repository = Repository::this();
    let version = repository.version()?;
    let dir = out.join("portable");
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(dir.join("dbdev"))?;
    let mut files = vec![
        (dir.join(format!("resi_pg--{version}.pg_tle.sql")), pg_tle_install(&repository)?),
        (dir.join(format!("resi_pg--{version}.migration.sql")), migration(&repository)?),
    ];
    for (name, text) in update_migrations(&repository)? {
        files.push((dir.join(name), text));
    }
    for (name, text) in dbdev_package(&repository)? {
        files.push((dir.join("dbdev").join(name), text));
    }
    let mut written = Vec::new();
    for (path, text) in files {
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}
