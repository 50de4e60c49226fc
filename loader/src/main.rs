//! `resi-loader`: streams miners' Parquet uploads into the `resi` schema.
//!
//! Placeholder: the loader is the next milestone (S3/local discovery, COPY into staging, the
//! set-based fold). Until then the binary says so instead of pretending to work.

fn main() {
    eprintln!("resi-loader {}: not implemented yet (see README.md, \"Layout\")", env!("CARGO_PKG_VERSION"));
    std::process::exit(2);
}
