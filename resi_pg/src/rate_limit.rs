//! Rate limits: `resi.rate_limit_for`. `resi.check_miner_rate_limit` and
//! `resi.record_miner_submission` are SQL over it (sql/admission.sql): they are table
//! lookups, where PL/pgSQL's cached plans are the right tool.

use pgrx::prelude::*;

/// `resi.rate_limit_for(trust)`: submissions (uploaded objects) a miner of this trust may make
/// per UTC day, from the `resi.rate_limit_tiers` setting (default `0.8:10000, 0.6:5000,
/// 0.4:1000, 0:100`: trust ≥ 0.8 → 10000, ≥ 0.6 → 5000, ≥ 0.4 → 1000, else 100).
///
/// STABLE (the setting can change between statements), STRICT, PARALLEL SAFE. Trust below every
/// tier, -Infinity and NaN get the lowest tier's limit; +Infinity the highest.
#[pg_extern(stable, strict, parallel_safe)]
fn rate_limit_for(trust: f64) -> i32 {
    crate::guc::with_rate_limit_tiers(|tiers| tiers.limit_for(trust))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn limit(trust: &str) -> Option<i32> {
        Spi::get_one(&format!("SELECT resi.rate_limit_for({trust})")).unwrap()
    }

    fn allowed(args: &str) -> Option<bool> {
        Spi::get_one(&format!("SELECT resi.check_miner_rate_limit({args})")).unwrap()
    }

    #[pg_test]
    fn default_tiers() {
        for (trust, expected) in [
            ("1", 10000),
            ("0.8", 10000),
            ("0.7999", 5000),
            ("0.6", 5000),
            ("0.4", 1000),
            ("0.3999", 100),
            ("0", 100),
            ("-1", 100),
            ("'NaN'", 100),
            ("'Infinity'", 10000),
            ("'-Infinity'", 100),
        ] {
            assert_eq!(limit(trust), Some(expected), "trust {trust}");
        }
        assert_eq!(limit("NULL"), None);
    }

    #[pg_test]
    fn tiers_are_a_setting() {
        Spi::run("SET resi.rate_limit_tiers = '0.9:50, 0.1:5'").unwrap();
        assert_eq!((limit("0.95"), limit("0.5"), limit("0.01")), (Some(50), Some(5), Some(5)));
        Spi::run("RESET resi.rate_limit_tiers").unwrap();
        assert_eq!(limit("0.95"), Some(10000));
    }

    #[pg_test(error = "invalid value for parameter \"resi.rate_limit_tiers\": \"0.9=50\"")]
    fn malformed_tiers_are_refused() {
        Spi::run("SET resi.rate_limit_tiers = '0.9=50'").unwrap();
    }

    #[pg_test]
    fn check_counts_the_day_against_the_tier() {
        // Unknown miner: initial trust 0.25 → 100 a day.
        assert_eq!(allowed("'new-miner'"), Some(true));
        assert_eq!(allowed("'new-miner', 100"), Some(true));
        assert_eq!(allowed("'new-miner', 101"), Some(false));
        Spi::run("INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES ('good', 0.85), ('mid', 0.5)")
            .unwrap();
        Spi::run("SELECT resi.record_miner_submission('good', 9990, '2025-09-17 23:59:59+00')").unwrap();
        assert_eq!(allowed("'good', 10, '2025-09-17'"), Some(true));
        assert_eq!(allowed("'good', 11, '2025-09-17'"), Some(false));
        // Another UTC day starts from zero; a backfilled day is judged by its own count.
        assert_eq!(allowed("'good', 10000, '2025-09-18'"), Some(true));
        Spi::run("SELECT resi.record_miner_submission('mid', 1000, '2025-09-10 12:00+00')").unwrap();
        assert_eq!(allowed("'mid', 1, '2025-09-10'"), Some(false));
        assert_eq!(allowed("'mid', 1, '2025-09-11'"), Some(true));
        // Zero more is always fine; NULLs give NULL.
        assert_eq!(allowed("'mid', 0, '2025-09-10'"), Some(true));
        assert_eq!(allowed("NULL"), None);
        assert_eq!(allowed("'mid', NULL"), None);
        assert_eq!(allowed("'mid', 1, NULL"), None);
        // An empty hotkey is just an unknown miner.
        assert_eq!(allowed("'', 100"), Some(true));
        assert_eq!(allowed("'', 101"), Some(false));
    }

    #[pg_test]
    fn banned_miners_get_false() {
        Spi::run("INSERT INTO resi.miner_trust (miner_hotkey, trust_score, banned_until, ban_reason) VALUES ('bad', 0.9, 'infinity', 'fake data'), ('was-bad', 0.9, now() - interval '1 day', 'served')").unwrap();
        assert_eq!(allowed("'bad'"), Some(false));
        assert_eq!(allowed("'bad', 0"), Some(false));
        assert_eq!(allowed("'was-bad'"), Some(true));
    }

    #[pg_test]
    fn hostile_hotkeys_are_plain_values() {
        let evil = "'x''); DROP TABLE resi.miner_trust; --'";
        assert_eq!(allowed(evil), Some(true));
        Spi::run(&format!("SELECT resi.record_miner_submission({evil}, 3)")).unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM resi.miner_trust").unwrap(), Some(1));
        assert_eq!(
            Spi::get_one::<i32>(&format!(
                "SELECT submissions FROM resi.miner_submission_days WHERE miner_hotkey = {evil}"
            ))
            .unwrap(),
            Some(3)
        );
    }

    #[pg_test(error = "resi.check_miner_rate_limit: submissions must be >= 0, got -1")]
    fn negative_submissions_are_an_error() {
        allowed("'m', -1");
    }
}
