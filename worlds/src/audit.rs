//! The validator's audits of one cycle: each audited listing's re-scraped truth judges every
//! miner's current claim on it.
//!
//! Everything goes through `record_audit`, one listing at a time, so the SQL entry point can
//! change in one place: `resi.record_validation` per claim (the default, every release), or
//! `resi.record_audit(zpid, listing, seen_at)` (resi_pg 0.5.0; `--audit-api record_audit`).

use crate::files::read_audits;
use crate::time;
use anyhow::{bail, Context, Result};
use postgres::Client;
use std::path::Path;
use std::time::SystemTime;

/// Which SQL entry point records an audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditApi {
    /// `resi.record_validation(miner_hotkey, zpid, passed)` for every miner with a claim on the listing.
    Validation,
    /// `resi.record_audit(zpid, listing jsonb, seen_at timestamptz)`.
    #[value(name = "record_audit")]
    RecordAudit,
}

/// What the audits of a cycle did.
#[derive(Debug, Default)]
pub struct Totals {
    pub listings: usize,
    pub claims: usize,
    /// Known with `AuditApi::Validation` only (`resi.record_audit` keeps its verdicts per field).
    pub claims_failed: Option<usize>,
}

/// Perform the audits of `cycle` listed in the world's audits.csv, in their order.
pub fn run(client: &mut Client, world: &Path, cycle: usize, api: AuditApi) -> Result<Totals> {
    let audits: Vec<_> = read_audits(world)?.into_iter().filter(|a| a.cycle == cycle).collect();
    let mut totals = Totals::default();
    for audit in &audits {
        let judged = record_audit(client, api, &audit.zpid, &audit.truth, time::system_time(audit.seen_at))
            .with_context(|| format!("audit of listing {} in cycle {cycle}", audit.zpid))?;
        totals.listings += 1;
        totals.claims += judged.claims;
        totals.claims_failed = judged.failed.map(|f| totals.claims_failed.unwrap_or(0) + f);
    }
    Ok(totals)
}

/// The claims one audit judged.
#[derive(Debug)]
pub struct Judged {
    pub claims: usize,
    /// How many failed, when the entry point tells.
    pub failed: Option<usize>,
}

/// Record the validator's re-scrape of listing `zpid` (`truth`: the listing as seen at
/// `seen_at`). With `AuditApi::Validation`, each miner's current claim passes when its price
/// is within 1 % of the truth and its bedrooms and home_status equal the truth's.
pub fn record_audit(
    client: &mut Client,
    api: AuditApi,
    zpid: &str,
    truth: &serde_json::Value,
    seen_at: SystemTime,
) -> Result<Judged> {
    let mut txn = client.transaction()?;
    let judged = match api {
        AuditApi::RecordAudit => {
            let claims: i32 = txn
                .query_one("SELECT resi.record_audit($1, $2::text::jsonb, $3)", &[&zpid, &truth.to_string(), &seen_at])?
                .get(0);
            Judged { claims: claims as usize, failed: None }
        }
        AuditApi::Validation => {
            let (Some(price), Some(bedrooms), Some(status)) =
                (truth["price"].as_i64(), truth["bedrooms"].as_i64(), truth["home_status"].as_str())
            else {
                bail!("the audit's truth lacks price, bedrooms or home_status: {truth}");
            };
            let claims = txn.query(
                "SELECT miner_hotkey, price, bedrooms, home_status FROM resi.miner_claims WHERE zpid = $1
                  ORDER BY miner_hotkey",
                &[&zpid],
            )?;
            let mut failed = 0;
            for claim in &claims {
                let hotkey: String = claim.get(0);
                let passed =
                    claim.get::<_, Option<i64>>(1).is_some_and(|p| (p - price).abs() as f64 <= 0.01 * price as f64)
                        && claim.get::<_, Option<i32>>(2).is_some_and(|b| i64::from(b) == bedrooms)
                        && claim.get::<_, Option<&str>>(3) == Some(status);
                txn.execute("SELECT resi.record_validation($1, $2, $3)", &[&hotkey, &zpid, &passed])?;
                failed += usize::from(!passed);
            }
            Judged { claims: claims.len(), failed: Some(failed) }
        }
    };
    txn.commit()?;
    Ok(judged)
}
