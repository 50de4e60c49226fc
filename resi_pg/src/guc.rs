//! Settings a DBA can change (GUCs), registered when the library loads.
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `resi.rate_limit_tiers` | `0.8:10000, 0.6:5000, 0.4:1000, 0:100` | `min_trust:limit` pairs: daily submissions by trust |
//! | `resi.initial_trust` | `0.25` | trust of a miner not yet in `resi.miner_trust` |
//! | `resi.quality_min_price` | `1000` | `resi.submission_quality`: lower prices are `suspicious_price_range` |
//! | `resi.quality_max_price` | `1e+08` | `resi.submission_quality`: higher prices are `suspicious_price_range` |
//! | `resi.quality_max_zip_codes` | `50` | `resi.submission_quality`: more distinct zip codes are `excessive_geographic_spread` |
//! | `resi.max_submission_rows` | `1000000` | objects with more rows are rejected as `too_large` |
//! | `resi.over_limit_strike_attempts` | `5` | over-limit objects in one UTC day that earn the miner a strike |
//! | `resi.strikes_per_ban` | `3` | strikes that get the miner banned |
//! | `resi.ban_duration` | `6h` (minutes) | the first ban; each later ban lasts twice the one before |
//! | `resi.max_ban_duration` | `30d` (minutes) | the cap of that doubling |
//! | `resi.database_budget` | `8GB` (MB) | the size `resi.database_budget()` measures against |
//! | `resi.claim_half_life` | `2h` (minutes) | a claim's weight halves for every half-life its upload is older than the listing's newest claim, down to 1/8; 0: claims do not age |
//!
//! They decide how miners are judged, so only a superuser, or a role granted `SET` on them
//! (`resi.setup_roles()` grants `SET` and `ALTER SYSTEM` on each to `resi_admin`), may change
//! them (SUSET): per session, per role or database (`ALTER ROLE/DATABASE … SET`) or for the
//! cluster (`ALTER SYSTEM SET`, `postgresql.conf`). A loader cannot raise its own limits. A malformed tier list, and a number outside
//! its setting's range, are refused when set. The two durations are whole minutes and take
//! units (`SET resi.ban_duration = '2h'`). `resi.ingest_settings()` shows the ingest and penalty
//! settings in effect, typed.

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use resi_core::rate_limit::{RateLimitTiers, DEFAULT_TIERS};
use std::cell::RefCell;
use std::ffi::{CStr, CString};

pub(crate) static RATE_LIMIT_TIERS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"0.8:10000, 0.6:5000, 0.4:1000, 0:100"));

pub(crate) static INITIAL_TRUST: GucSetting<f64> = GucSetting::<f64>::new(0.25);

pub(crate) static QUALITY_MIN_PRICE: GucSetting<f64> = GucSetting::<f64>::new(1000.0);
pub(crate) static QUALITY_MAX_PRICE: GucSetting<f64> = GucSetting::<f64>::new(100_000_000.0);
pub(crate) static QUALITY_MAX_ZIP_CODES: GucSetting<i32> = GucSetting::<i32>::new(50);

pub(crate) static MAX_SUBMISSION_ROWS: GucSetting<i32> = GucSetting::<i32>::new(1_000_000);
pub(crate) static OVER_LIMIT_STRIKE_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(5);
pub(crate) static STRIKES_PER_BAN: GucSetting<i32> = GucSetting::<i32>::new(3);
/// Minutes.
pub(crate) static BAN_DURATION: GucSetting<i32> = GucSetting::<i32>::new(360);
/// Minutes (30 days).
pub(crate) static MAX_BAN_DURATION: GucSetting<i32> = GucSetting::<i32>::new(43_200);

/// Megabytes (8 GB).
pub(crate) static DATABASE_BUDGET: GucSetting<i32> = GucSetting::<i32>::new(8192);

/// Minutes (one upload cycle of the network).
pub(crate) static CLAIM_HALF_LIFE: GucSetting<i32> = GucSetting::<i32>::new(120);

pub(crate) fn register() {
    debug_assert_eq!(RATE_LIMIT_TIERS.get().as_deref(), Some(CString::new(DEFAULT_TIERS).unwrap().as_c_str()));
    // SAFETY: the check hook is #[pg_guard]ed and only reads its argument.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"resi.rate_limit_tiers",
            c"Daily submission limits by miner trust, as min_trust:limit pairs.",
            c"A miner whose trust is at least min_trust may make limit submissions per UTC day (the highest tier reached); the lowest tier is also the floor.",
            &RATE_LIMIT_TIERS,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_rate_limit_tiers),
            None,
            None,
        );
    }
    GucRegistry::define_float_guc(
        c"resi.initial_trust",
        c"Trust of a miner that has no row in resi.miner_trust yet.",
        c"New identities start low so that creating identities does not buy influence.",
        &INITIAL_TRUST,
        0.0,
        1.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    register_quality();
    register_ingest();
}

fn register_quality() {
    GucRegistry::define_float_guc(
        c"resi.quality_min_price",
        c"Lowest plausible listing price for resi.submission_quality.",
        c"A submission with a lower price (or a NaN or infinite one) gets the issue suspicious_price_range (score x0.5).",
        &QUALITY_MIN_PRICE,
        0.0,
        1e300,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"resi.quality_max_price",
        c"Highest plausible listing price for resi.submission_quality.",
        c"A submission with a higher price (or a NaN or infinite one) gets the issue suspicious_price_range (score x0.5).",
        &QUALITY_MAX_PRICE,
        0.0,
        1e300,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"resi.quality_max_zip_codes",
        c"Most distinct zip codes one submission may cover without the issue excessive_geographic_spread.",
        c"A submission with more distinct non-NULL zip codes gets the issue excessive_geographic_spread (score x0.7).",
        &QUALITY_MAX_ZIP_CODES,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
}

fn register_ingest() {
    GucRegistry::define_int_guc(
        c"resi.max_submission_rows",
        c"Most rows an uploaded object may have; larger objects are rejected as too_large.",
        c"",
        &MAX_SUBMISSION_ROWS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"resi.over_limit_strike_attempts",
        c"Over-limit objects in one UTC day that earn the miner a strike.",
        c"",
        &OVER_LIMIT_STRIKE_ATTEMPTS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"resi.strikes_per_ban",
        c"Strikes that get a miner banned.",
        c"",
        &STRIKES_PER_BAN,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"resi.ban_duration",
        c"Duration of a miner's first ban.",
        c"Each later ban lasts twice the one before, up to resi.max_ban_duration.",
        &BAN_DURATION,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MIN,
    );
    GucRegistry::define_int_guc(
        c"resi.max_ban_duration",
        c"Longest ban: the cap of the doubling of resi.ban_duration.",
        c"",
        &MAX_BAN_DURATION,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MIN,
    );
    GucRegistry::define_int_guc(
        c"resi.database_budget",
        c"The database size resi.database_budget() measures against.",
        c"The plan's storage: 8 GB for the free tier, 50 GB for pro.",
        &DATABASE_BUDGET,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"resi.claim_half_life",
        c"How fast an older claim loses weight against a listing's newest claim.",
        c"A claim's weight halves for every half-life its upload is older than the newest claim on the listing; 0: claims do not age.",
        &CLAIM_HALF_LIFE,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MIN,
    );
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_rate_limit_tiers(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let text = if newval.is_null() || (*newval).is_null() {
        return false;
    } else {
        CStr::from_ptr(*newval).to_string_lossy()
    };
    match RateLimitTiers::parse(&text) {
        Ok(_) => true,
        Err(e) => {
            let detail = CString::new(e.message.replace('\0', "")).unwrap_or_default();
            pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE as i32);
            pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr());
            false
        }
    }
}

thread_local! {
    /// The tiers parsed from the last value seen, re-parsed only when the setting changes.
    static TIERS_CACHE: RefCell<Option<(CString, RateLimitTiers)>> = const { RefCell::new(None) };
}

/// The rate-limit tiers currently in effect.
pub(crate) fn with_rate_limit_tiers<R>(f: impl FnOnce(&RateLimitTiers) -> R) -> R {
    let current = RATE_LIMIT_TIERS.get().unwrap_or_else(|| CString::new(DEFAULT_TIERS).unwrap());
    TIERS_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.as_ref().is_none_or(|(text, _)| *text != current) {
            // The check hook accepted this value, so it parses; fall back to the defaults anyway.
            let tiers = RateLimitTiers::parse(&current.to_string_lossy()).unwrap_or_default();
            *cache = Some((current, tiers));
        }
        f(&cache.as_ref().expect("filled above").1)
    })
}
