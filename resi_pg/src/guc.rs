//! Settings a DBA can change (GUCs), registered when the library loads.
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `resi.rate_limit_tiers` | `0.8:10000, 0.6:5000, 0.4:1000, 0:100` | `min_trust:limit` pairs: daily submissions by trust |
//! | `resi.initial_trust` | `0.25` | trust of a miner not yet in `resi.miner_trust` |
//!
//! Both can be set per session, per role or database (`ALTER ROLE/DATABASE … SET`) or for the
//! cluster (`ALTER SYSTEM SET`, `postgresql.conf`). A malformed tier list is refused when set.

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use resi_core::rate_limit::{RateLimitTiers, DEFAULT_TIERS};
use std::cell::RefCell;
use std::ffi::{CStr, CString};

pub(crate) static RATE_LIMIT_TIERS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"0.8:10000, 0.6:5000, 0.4:1000, 0:100"));

pub(crate) static INITIAL_TRUST: GucSetting<f64> = GucSetting::<f64>::new(0.25);

pub(crate) fn register() {
    debug_assert_eq!(RATE_LIMIT_TIERS.get().as_deref(), Some(CString::new(DEFAULT_TIERS).unwrap().as_c_str()));
    // SAFETY: the check hook is #[pg_guard]ed and only reads its argument.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"resi.rate_limit_tiers",
            c"Daily submission limits by miner trust, as min_trust:limit pairs.",
            c"A miner whose trust is at least min_trust may make limit submissions per UTC day (the highest tier reached); the lowest tier is also the floor.",
            &RATE_LIMIT_TIERS,
            GucContext::Userset,
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
        GucContext::Userset,
        GucFlags::default(),
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
