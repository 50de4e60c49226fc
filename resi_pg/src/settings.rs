//! `resi.ingest_settings()`: the ingest and penalty settings in effect, as one typed row.

use crate::composite::composite;
use crate::guc;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::{pg_sys, IntoDatum};

/// `resi.ingest_settings() → resi.ingest_settings`: `resi.max_submission_rows`,
/// `resi.over_limit_strike_attempts`, `resi.strikes_per_ban`, and `resi.ban_duration` and
/// `resi.max_ban_duration` as intervals of hours, minutes and seconds (a day is 24 hours:
/// `43200` minutes is `720:00:00`, not `30 days`).
///
/// STABLE (settings can change between statements), PARALLEL SAFE, never NULL.
#[pg_extern(stable, parallel_safe)]
fn ingest_settings(fcinfo: pg_sys::FunctionCallInfo) -> pgrx::composite_type!('static, "resi.ingest_settings") {
    composite(
        fcinfo,
        "resi.ingest_settings",
        &[
            guc::MAX_SUBMISSION_ROWS.get().into_datum(),
            guc::OVER_LIMIT_STRIKE_ATTEMPTS.get().into_datum(),
            guc::STRIKES_PER_BAN.get().into_datum(),
            minutes(guc::BAN_DURATION.get()).into_datum(),
            minutes(guc::MAX_BAN_DURATION.get()).into_datum(),
        ],
    )
}

/// `resi.database_budget_bytes() → bigint`: the `resi.database_budget` setting in bytes (what
/// `resi.database_budget()` compares sizes with). STABLE, PARALLEL SAFE, never NULL.
#[pg_extern(stable, parallel_safe)]
pub(crate) fn database_budget_bytes() -> i64 {
    i64::from(guc::DATABASE_BUDGET.get()) * 1024 * 1024
}

/// `resi.claim_half_life_seconds() → double precision`: the `resi.claim_half_life` setting in
/// seconds (0: claims do not age; what `resi.claim_recency` reads). STABLE, PARALLEL SAFE, never
/// NULL.
#[pg_extern(stable, parallel_safe)]
pub(crate) fn claim_half_life_seconds() -> f64 {
    f64::from(guc::CLAIM_HALF_LIFE.get()) * 60.0
}

/// An interval of `minutes` (≥ 1: the settings' minimum), exactly, as microseconds.
fn minutes(minutes: i32) -> Interval {
    Interval::new(0, 0, i64::from(minutes.max(0)) * 60_000_000).expect("a non-negative interval")
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn settings() -> String {
        Spi::get_one::<String>("SELECT resi.ingest_settings()::text").unwrap().unwrap()
    }

    #[pg_test]
    fn ingest_settings_defaults() {
        assert_eq!(settings(), "(1000000,5,3,06:00:00,720:00:00)");
        let (rows, ban) =
            Spi::get_two::<i32, Interval>("SELECT s.max_submission_rows, s.ban_duration FROM resi.ingest_settings() s")
                .unwrap();
        assert_eq!(rows, Some(1_000_000));
        assert_eq!(ban, Some(Interval::from_hours(6)));
        assert_eq!(
            Spi::get_one::<bool>("SELECT (resi.ingest_settings()).max_ban_duration = interval '30 days'").unwrap(),
            Some(true)
        );
    }

    #[pg_test]
    fn ingest_settings_follow_the_settings() {
        Spi::run("SET resi.ban_duration = '2h'").unwrap();
        assert_eq!(Spi::get_one::<String>("SHOW resi.ban_duration").unwrap().as_deref(), Some("2h"));
        Spi::run("SET resi.max_ban_duration = '7d'").unwrap();
        Spi::run("SET resi.max_submission_rows = 10").unwrap();
        Spi::run("SET resi.over_limit_strike_attempts = 1").unwrap();
        Spi::run("SET resi.strikes_per_ban = 2").unwrap();
        assert_eq!(settings(), "(10,1,2,02:00:00,168:00:00)");
        // A plain number is minutes.
        Spi::run("SET resi.ban_duration = 90").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT (resi.ingest_settings()).ban_duration::text").unwrap().as_deref(),
            Some("01:30:00")
        );
        Spi::run("RESET ALL").unwrap();
        assert_eq!(settings(), "(1000000,5,3,06:00:00,720:00:00)");
    }

    #[pg_test(error = "0 min is outside the valid range for parameter \"resi.ban_duration\" (1 .. 2147483647)")]
    fn zero_ban_duration_is_refused() {
        Spi::run("SET resi.ban_duration = 0").unwrap();
    }

    #[pg_test(error = "0 is outside the valid range for parameter \"resi.strikes_per_ban\" (1 .. 2147483647)")]
    fn zero_strikes_is_refused() {
        Spi::run("SET resi.strikes_per_ban = 0").unwrap();
    }
}
