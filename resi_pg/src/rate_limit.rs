//! Rate limits: `resi.rate_limit_for` and `resi.check_miner_rate_limit`.
//! `resi.record_miner_submission` is PL/pgSQL (sql/admission.sql): it writes, once per object.

use crate::consensus::{fmgr_function, Args};
use crate::error::{raise, raise_code};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use resi_core::error::Error;
use resi_core::rate_limit::within_limit;
use std::collections::HashMap;
use std::ffi::CStr;

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

const CHECK: &str = "resi.check_miner_rate_limit";

fmgr_function!(
    /// `resi.check_miner_rate_limit(hotkey text, submissions integer, on_day date) → boolean`
    /// (sql/admission.sql declares it, with its defaults and its contract): true when the
    /// miner may make `submissions` more submissions on that UTC day. STABLE (it reads the
    /// statement's snapshot, as the PL/pgSQL it replaces did), STRICT, PARALLEL SAFE;
    /// negative `submissions` raise 22023; the caller needs SELECT on `resi.miner_trust` and
    /// `resi.miner_submission_days` (42501 otherwise).
    check_miner_rate_limit_wrapper,
    pg_finfo_check_miner_rate_limit_wrapper,
    check_miner_rate_limit
);

/// SAFETY: PostgreSQL calls this with three non-NULL arguments (the function is STRICT) of
/// the declared types.
unsafe fn check_miner_rate_limit(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let (Some(hotkey), Some(submissions), Some(day)) = (args.datum(0), args.datum(1), args.datum(2)) else {
            return crate::consensus::null_result(fcinfo);
        };
        let submissions = submissions.value() as i32;
        if submissions < 0 {
            raise(Error::invalid_parameter(format!("submissions must be >= 0, got {submissions}")), CHECK);
        }
        let reads = Reads::of_call(fcinfo);
        // The miner's trust and ban, as the statement sees them; an unknown miner has the
        // initial trust and no ban.
        let trust = match (*reads).trust_row(hotkey, args.bytes(0).unwrap_or_default()) {
            Some(row) => {
                let banned =
                    row[1].is_some_and(|until| until.value() as i64 > pg_sys::GetCurrentTransactionStartTimestamp());
                if banned {
                    return pg_sys::Datum::from(false);
                }
                // NOT NULL in the table.
                row[0].map_or(crate::guc::INITIAL_TRUST.get(), |t| f64::from_bits(t.value() as u64))
            }
            None => crate::guc::INITIAL_TRUST.get(),
        };
        let used = (*reads).days.row(&[hotkey, day]).and_then(|row| row[0]).map_or(0, |n| i64::from(n.value() as i32));
        let limit = crate::guc::with_rate_limit_tiers(|tiers| tiers.limit_for(trust));
        pg_sys::Datum::from(within_limit(used, submissions, limit))
    }
}

/// The two primary-key reads of one call site (`fn_extra`), looked up on its first call: the
/// catalogue lookups (relation, index, attribute numbers, equality operators) are done once per
/// query rather than once per row, as the executor does for a plan.
struct Reads {
    trust: PrimaryKeyRead<1, 2>,
    days: PrimaryKeyRead<2, 1>,
    /// The trust rows read so far (by hotkey, `None`: no row) and the snapshot they were read
    /// with: a query checks the same few miners over and over, and under one snapshot a row
    /// reads the same every time.
    trust_rows: HashMap<Vec<u8>, Option<[Option<pg_sys::Datum>; 2]>>,
    trust_rows_seen_by: Option<SnapshotIdentity>,
}

/// At most this many trust rows are kept; then the cache starts again.
const TRUST_ROWS_KEPT: usize = 65_536;

impl Reads {
    /// The call site's reads, created in its `fn_mcxt` on the first call (and dropped with it).
    ///
    /// SAFETY: `fcinfo` is the live call's, in a transaction.
    unsafe fn of_call(fcinfo: pg_sys::FunctionCallInfo) -> *mut Reads {
        unsafe {
            let flinfo = (*fcinfo).flinfo;
            let mut reads = (*flinfo).fn_extra as *mut Reads;
            if reads.is_null() {
                // Scan keys' comparison functions live as long as the reads.
                let outer = pg_sys::MemoryContextSwitchTo((*flinfo).fn_mcxt);
                let value = Reads {
                    trust: PrimaryKeyRead::new(c"miner_trust", [c"trust_score", c"banned_until"]),
                    days: PrimaryKeyRead::new(c"miner_submission_days", [c"submissions"]),
                    trust_rows: HashMap::new(),
                    trust_rows_seen_by: None,
                };
                pg_sys::MemoryContextSwitchTo(outer);
                reads = crate::consensus::place_in_context((*flinfo).fn_mcxt, value);
                (*flinfo).fn_extra = reads as *mut std::ffi::c_void;
            }
            reads
        }
    }

    /// The trust row of the miner `hotkey` (its datum and bytes), read with the active snapshot:
    /// from the rows read before under the same snapshot, else from the table. Privileges are
    /// checked on every call, as a read would.
    ///
    /// SAFETY: in a transaction with an active snapshot; `hotkey` is a text datum.
    unsafe fn trust_row(&mut self, hotkey: pg_sys::Datum, bytes: &[u8]) -> Option<[Option<pg_sys::Datum>; 2]> {
        unsafe {
            let Some(is_active) = SnapshotIdentity::is_active() else {
                return self.trust.row(&[hotkey]);
            };
            self.trust.check_access();
            if !self.trust_rows_seen_by.as_ref().is_some_and(is_active) || self.trust_rows.len() >= TRUST_ROWS_KEPT {
                self.trust_rows.clear();
                self.trust_rows_seen_by = Some(SnapshotIdentity::of_active());
            }
            if let Some(row) = self.trust_rows.get(bytes) {
                return *row;
            }
            let row = self.trust.row(&[hotkey]);
            self.trust_rows.insert(bytes.to_vec(), row);
            row
        }
    }
}

/// What an MVCC snapshot sees, written out: two snapshots with equal identities see the same
/// rows. Other transactions' rows are visible by the transaction bounds and the transactions in
/// progress (`xip`, `subxip`); ours by the command and the subtransaction they are read in (a
/// subtransaction of ours that aborted wrote its rows under its own subtransaction id, and a
/// read after it runs under a later command or another subtransaction).
#[derive(Clone, PartialEq, Eq)]
struct SnapshotIdentity {
    xmin: pg_sys::TransactionId,
    xmax: pg_sys::TransactionId,
    in_progress: Vec<pg_sys::TransactionId>,
    sub_in_progress: Vec<pg_sys::TransactionId>,
    sub_overflowed: bool,
    command: pg_sys::CommandId,
    subtransaction: pg_sys::SubTransactionId,
}

impl SnapshotIdentity {
    /// Whether `self` is the active snapshot's identity, `None` when that is not a plain MVCC
    /// snapshot taken on a primary (nothing is cached then).
    ///
    /// SAFETY: in a transaction.
    unsafe fn is_active() -> Option<impl Fn(&SnapshotIdentity) -> bool> {
        unsafe {
            let s = pg_sys::GetActiveSnapshot();
            if s.is_null() || (*s).snapshot_type != pg_sys::SnapshotType::SNAPSHOT_MVCC || (*s).takenDuringRecovery {
                return None;
            }
            let s = &*s;
            let xip = xids(s.xip, s.xcnt as usize);
            let subxip = xids(s.subxip, s.subxcnt.max(0) as usize);
            let subtransaction = pg_sys::GetCurrentSubTransactionId();
            Some(move |id: &SnapshotIdentity| {
                id.xmin == s.xmin
                    && id.xmax == s.xmax
                    && id.command == s.curcid
                    && id.subtransaction == subtransaction
                    && id.sub_overflowed == s.suboverflowed
                    && id.in_progress == xip
                    && id.sub_in_progress == subxip
            })
        }
    }

    /// The active snapshot's identity.
    ///
    /// SAFETY: in a transaction, with an MVCC active snapshot ([`SnapshotIdentity::is_active`]).
    unsafe fn of_active() -> SnapshotIdentity {
        unsafe {
            let s = &*pg_sys::GetActiveSnapshot();
            SnapshotIdentity {
                xmin: s.xmin,
                xmax: s.xmax,
                in_progress: xids(s.xip, s.xcnt as usize).to_vec(),
                sub_in_progress: xids(s.subxip, s.subxcnt.max(0) as usize).to_vec(),
                sub_overflowed: s.suboverflowed,
                command: s.curcid,
                subtransaction: pg_sys::GetCurrentSubTransactionId(),
            }
        }
    }
}

/// `n` transaction ids from `at` (none when `at` is NULL).
///
/// SAFETY: `at` is NULL or points to `n` ids that outlive the slice.
unsafe fn xids<'a>(at: *const pg_sys::TransactionId, n: usize) -> &'a [pg_sys::TransactionId] {
    if at.is_null() || n == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(at, n) }
}

/// A read of the row of `resi.<table>` whose primary key (`KEYS` columns) equals a key,
/// returning `WANTED` by-value columns, with the calling statement's snapshot.
///
/// This is what a PL/pgSQL `SELECT … WHERE key = $1` did, without an executor started per
/// call: the table and its primary key are opened (AccessShareLock, kept to the end of the
/// transaction as the executor keeps it), SELECT privilege is checked as the executor would
/// (42501), and a table with row-level security enabled for the caller is an error rather
/// than read around its policies (0A000; the extension's tables have none).
struct PrimaryKeyRead<const KEYS: usize, const WANTED: usize> {
    table: &'static CStr,
    /// The user whose privileges were last checked: the check runs on the first read, and
    /// again when the calling user changed (a SECURITY DEFINER caller).
    checked_for: pg_sys::Oid,
    relid: pg_sys::Oid,
    index: pg_sys::Oid,
    /// Equality in the index's own operator family and collation, as the planner's index
    /// condition would be; each call fills in the arguments.
    keys: [pg_sys::ScanKeyData; KEYS],
    wanted: [pg_sys::AttrNumber; WANTED],
}

impl<const KEYS: usize, const WANTED: usize> PrimaryKeyRead<KEYS, WANTED> {
    /// Look the table up (42P01 when missing). Its scan keys' functions are looked up in the
    /// current memory context, which must live as long as the read.
    ///
    /// SAFETY: in a transaction.
    unsafe fn new(table: &'static CStr, wanted: [&CStr; WANTED]) -> Self {
        unsafe {
            let schema = pg_sys::get_namespace_oid(c"resi".as_ptr(), false);
            let relid = pg_sys::get_relname_relid(table.as_ptr(), schema);
            if relid == pg_sys::InvalidOid {
                raise_code(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                    CHECK,
                    &format!("relation resi.{} does not exist", table.to_string_lossy()),
                );
            }
            let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
            let heap = pg_sys::table_open(relid, lock);
            let index = pg_sys::index_open(pg_sys::RelationGetPrimaryKeyIndex(heap), lock);
            let keys = std::array::from_fn(|i| {
                let family = *(*index).rd_opfamily.add(i);
                let input = *(*index).rd_opcintype.add(i);
                let op = pg_sys::get_opfamily_member(family, input, input, pg_sys::BTEqualStrategyNumber as i16);
                let mut entry = std::mem::zeroed::<pg_sys::ScanKeyData>();
                pg_sys::ScanKeyEntryInitialize(
                    &mut entry,
                    0,
                    (i + 1) as pg_sys::AttrNumber,
                    pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                    input,
                    *(*index).rd_indcollation.add(i),
                    pg_sys::get_opcode(op),
                    pg_sys::Datum::from(0),
                );
                entry
            });
            let read = PrimaryKeyRead {
                table,
                checked_for: pg_sys::InvalidOid,
                relid,
                index: (*index).rd_id,
                keys,
                wanted: wanted.map(|column| pg_sys::get_attnum(relid, column.as_ptr())),
            };
            pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
            pg_sys::table_close(heap, pg_sys::NoLock as pg_sys::LOCKMODE);
            read
        }
    }

    /// SELECT privilege for the current user (42501) and no row-level security (0A000), checked
    /// once per user.
    ///
    /// SAFETY: in a transaction.
    unsafe fn check_access(&mut self) {
        unsafe {
            let user = pg_sys::GetUserId();
            if self.checked_for == user {
                return;
            }
            let acl = pg_sys::pg_class_aclcheck(self.relid, user, pg_sys::ACL_SELECT as pg_sys::AclMode);
            if acl != pg_sys::AclResult::ACLCHECK_OK {
                pg_sys::aclcheck_error(acl, pg_sys::ObjectType::OBJECT_TABLE, self.table.as_ptr());
            }
            if pg_sys::check_enable_rls(self.relid, pg_sys::InvalidOid, false)
                == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
            {
                raise_code(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    CHECK,
                    &format!("row-level security on resi.{} is not supported", self.table.to_string_lossy()),
                );
            }
            self.checked_for = user;
        }
    }

    /// The wanted columns of the row whose key is `key` (the primary key's types, in its
    /// order), `None` for a NULL column; `None` when there is no such row.
    ///
    /// SAFETY: in a transaction with an active snapshot.
    unsafe fn row(&mut self, key: &[pg_sys::Datum; KEYS]) -> Option<[Option<pg_sys::Datum>; WANTED]> {
        unsafe {
            self.check_access();
            let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
            let heap = pg_sys::table_open(self.relid, lock);
            let index = pg_sys::index_open(self.index, lock);
            let mut keys = self.keys;
            for (entry, &value) in keys.iter_mut().zip(key) {
                entry.sk_argument = value;
            }
            let scan = pg_sys::index_beginscan(heap, index, pg_sys::GetActiveSnapshot(), KEYS as i32, 0);
            pg_sys::index_rescan(scan, keys.as_mut_ptr(), KEYS as i32, std::ptr::null_mut(), 0);
            let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
            let found = pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot);
            let row = found.then(|| {
                let last = self.wanted.iter().copied().max().unwrap_or(0);
                pg_sys::slot_getsomeattrs_int(slot, i32::from(last));
                self.wanted.map(|attnum| {
                    let at = (attnum - 1) as usize;
                    (!*(*slot).tts_isnull.add(at)).then(|| *(*slot).tts_values.add(at))
                })
            });
            pg_sys::ExecDropSingleTupleTableSlot(slot);
            pg_sys::index_endscan(scan);
            pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
            pg_sys::table_close(heap, pg_sys::NoLock as pg_sys::LOCKMODE);
            row
        }
    }
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

    /// It reads the tables as its caller, as the PL/pgSQL it replaced did.
    #[pg_test(error = "permission denied for table miner_trust")]
    fn callers_need_select_on_the_tables() {
        Spi::run("CREATE ROLE resi_test_outsider; GRANT USAGE ON SCHEMA resi TO resi_test_outsider").unwrap();
        Spi::run("SET ROLE resi_test_outsider").unwrap();
        allowed("'m'");
    }

    #[pg_test(error = "resi.check_miner_rate_limit: row-level security on resi.miner_trust is not supported")]
    fn row_level_security_is_not_read_around() {
        Spi::run("CREATE ROLE resi_test_reader; GRANT USAGE ON SCHEMA resi TO resi_test_reader").unwrap();
        Spi::run("GRANT SELECT ON resi.miner_trust, resi.miner_submission_days TO resi_test_reader").unwrap();
        Spi::run("ALTER TABLE resi.miner_trust ENABLE ROW LEVEL SECURITY").unwrap();
        Spi::run("SET ROLE resi_test_reader").unwrap();
        allowed("'m'");
    }

    /// A query that checks the same miners many times reads each trust row once per snapshot;
    /// the answers are those of reading it every time, and a change made in between (a ban, a
    /// subtransaction rolled back) is seen by the next check of the same call site.
    #[pg_test]
    fn repeated_checks_see_the_rows_of_their_snapshot() {
        Spi::run(
            "INSERT INTO resi.miner_trust (miner_hotkey, trust_score, banned_until, ban_reason)
             SELECT 'm' || i, (i % 10) / 10.0, CASE WHEN i % 7 = 3 THEN 'infinity'::timestamptz END,
                    CASE WHEN i % 7 = 3 THEN 'x' END
               FROM generate_series(0, 49) i;
             INSERT INTO resi.miner_submission_days (miner_hotkey, day, submissions)
             SELECT 'm' || i, '2025-09-17', (i * 37) % 1200 FROM generate_series(0, 59) i",
        )
        .unwrap();
        // 3,000 checks of 60 miners (10 without a trust row), against the same rule in SQL.
        let disagreements = Spi::get_one::<i64>(
            "SELECT count(*) FROM (SELECT 'm' || (i * 13 % 60) AS hk FROM generate_series(1, 3000) i) c
               LEFT JOIN resi.miner_trust t ON t.miner_hotkey = c.hk
               LEFT JOIN resi.miner_submission_days d ON d.miner_hotkey = c.hk AND d.day = '2025-09-17'
              WHERE resi.check_miner_rate_limit(c.hk, 1, '2025-09-17') IS DISTINCT FROM
                    (t.banned_until IS NULL
                     AND coalesce(d.submissions, 0) + 1 <= resi.rate_limit_for(coalesce(t.trust_score, resi.initial_trust())))",
        )
        .unwrap();
        assert_eq!(disagreements, Some(0));
        Spi::run(
            "CREATE TEMP TABLE seen (i integer, allowed boolean);
             DO $$
             DECLARE
                 undone boolean;
                 allowed boolean;
             BEGIN
                 INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES ('c', 0.9);
                 FOR i IN 1..3 LOOP
                     IF i = 2 THEN
                         UPDATE resi.miner_trust SET banned_until = 'infinity', ban_reason = 'x' WHERE miner_hotkey = 'c';
                     END IF;
                     IF i = 3 THEN
                         BEGIN
                             UPDATE resi.miner_trust SET banned_until = NULL, ban_reason = NULL WHERE miner_hotkey = 'c';
                             undone := resi.check_miner_rate_limit('c');
                             RAISE EXCEPTION 'undo';
                         EXCEPTION WHEN raise_exception THEN
                             INSERT INTO seen VALUES (0, undone);
                         END;
                     END IF;
                     -- A simple expression: its call site lives as long as the transaction.
                     allowed := resi.check_miner_rate_limit('c');
                     INSERT INTO seen VALUES (i, allowed);
                 END LOOP;
             END $$",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT string_agg(i || ':' || allowed, ' ' ORDER BY i) FROM seen").unwrap(),
            Some("0:true 1:true 2:false 3:false".into())
        );
    }

    #[pg_test(error = "resi.check_miner_rate_limit: submissions must be >= 0, got -1")]
    fn negative_submissions_are_an_error() {
        allowed("'m', -1");
    }
}
