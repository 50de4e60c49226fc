//! Trust-weighted consensus aggregates: `resi.consensus_mode`, `resi.consensus_median`, and
//! `resi.consensus_listing` (every field of a listing at once).
//!
//! All three are declared in sql/consensus.sql as
//! `CREATE AGGREGATE … (STYPE = internal, SFUNC, COMBINEFUNC, SERIALFUNC, DESERIALFUNC,
//! FINALFUNC, PARALLEL = SAFE)` over the support functions below (`#[pg_aggregate]` in pgrx
//! 0.18.1 cannot declare an `internal` state with serial functions: pgrx issue #2351). The state
//! is a Rust value (`resi_core::consensus`) owned by the aggregate's memory context: it is
//! dropped when PostgreSQL resets that context, and never serialised per row. A state of
//! `consensus_mode` or `consensus_median` that holds no heap memory (a small group's) is freed
//! with the context without being dropped ([`GroupState`]).
//!
//! The transition and final functions of `consensus_mode` and `consensus_median` are plain fmgr
//! entry points ([`fmgr_function!`]) rather than `#[pg_extern]` functions: they read their
//! arguments in place (a short text is not copied or converted), without pgrx's per-call
//! wrapper, which was a third of the aggregate's time per row (issue 16), and a final function
//! forms its row with the descriptor it looked up once per query. Their SQL is in
//! sql/consensus.sql, the same `CREATE FUNCTION` pgrx wrote for them before.

mod agreement;
mod listing;
mod median;
mod mode;
mod tally;

use crate::composite::{form_result, Field};
use crate::error::OrRaise;
pub(crate) use crate::fmgr::{fmgr_function, null_result, Args};
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgMemoryContexts};

/// Reading an aggregate's state from its fmgr call (the transition and final functions).
impl Args {
    /// The state (argument 0) of an `internal`-state aggregate's final function, when a row
    /// created one.
    ///
    /// SAFETY: argument 0 is NULL or a `T` this module created, not otherwise borrowed.
    #[inline(always)]
    pub(crate) unsafe fn state_if_any<'a, T>(&self) -> Option<&'a mut T> {
        unsafe { self.datum(0) }.map(|datum| unsafe { &mut *datum.cast_mut_ptr::<T>() })
    }

    /// The transition state (argument 0) of an `internal`-state aggregate, created on the
    /// group's first row in the aggregate's memory context (as [`state_mut`] does).
    ///
    /// SAFETY: argument 0 is NULL or a `T` this module created.
    #[inline(always)]
    pub(crate) unsafe fn state<T: Default>(&self) -> *mut T {
        match unsafe { self.datum(0) } {
            Some(datum) => datum.cast_mut_ptr::<T>(),
            // SAFETY: the aggregate's context, alive for the group.
            None => unsafe { new_in_context::<T>(in_aggregate_context(self.fcinfo(), MISUSE).value()) },
        }
    }
}

/// The combine step of `consensus_mode` and `consensus_median`: merge a partial state, as its
/// serial function wrote it (argument 1, passed on by [`pass_serialized`]), straight into the
/// group's state (argument 0, created on the group's first partial). A parallel plan's leader
/// combines one partial per worker and group; reading the bytes once, without building and
/// dropping a state for each, was most of that step's cost. NULL and NULL give NULL.
///
/// SAFETY: argument 0 is NULL or a `T` of this aggregate; argument 1 is NULL or a bytea.
pub(crate) unsafe fn combine_serialized<T: GroupState>(
    fcinfo: pg_sys::FunctionCallInfo,
    merge: fn(&mut T, &[u8]) -> resi_core::error::Result<()>,
    name: &'static str,
) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let Some(partial) = args.bytes(1) else {
            return match args.datum(0) {
                Some(state) => state,
                None => null_result(fcinfo),
            };
        };
        args.change_group_state::<T>(name, |state| merge(state, partial))
    }
}

/// A transition state of `consensus_mode` or `consensus_median`: a value that holds a small
/// group without heap memory, so that it needs no drop until it outgrows that. Such a state
/// is placed in the aggregate's memory context on its own ([`new_group_state`]), and a reset
/// callback that drops it is registered only once it owns heap memory ([`changed`]): a
/// callback for every group was a tenth of a small group's cost (the registration, and at
/// the end a call for each that touched every state once more).
pub(crate) trait GroupState: Default {
    /// Whether the state holds memory on the Rust heap, which only dropping it frees.
    fn owns_heap(&self) -> bool;
}

impl GroupState for resi_core::consensus::ModeState {
    #[inline(always)]
    fn owns_heap(&self) -> bool {
        self.owns_heap()
    }
}

impl GroupState for resi_core::consensus::MedianState {
    #[inline(always)]
    fn owns_heap(&self) -> bool {
        self.owns_heap()
    }
}

impl Args {
    /// Apply `change` to the group's state (argument 0; created on the group's first row or
    /// partial in the aggregate's memory context) and return the state as the transition value.
    /// An error of `change` is raised as `name`'s, after the state is made safe to free.
    ///
    /// SAFETY: argument 0 is NULL or a `T` this module created ([`new_group_state`]).
    #[inline(always)]
    pub(crate) unsafe fn change_group_state<T: GroupState>(
        &self,
        name: &'static str,
        change: impl FnOnce(&mut T) -> resi_core::error::Result<()>,
    ) -> pg_sys::Datum {
        unsafe {
            let state = match self.datum(0) {
                Some(datum) => datum.cast_mut_ptr::<T>(),
                None => new_group_state::<T>(self.fcinfo()),
            };
            changed(self.fcinfo(), state, change).or_raise(name);
            pg_sys::Datum::from(state)
        }
    }
}

/// `change` applied to `state`, which is then dropped when its memory context is reset if it
/// now owns heap memory and did not before: a [`GroupState`] that owns none is freed with its
/// context without being dropped. Every change of such a state goes through here.
///
/// SAFETY: `state` is a `T` made by [`new_group_state`] in the aggregate's current context,
/// not otherwise borrowed.
#[inline(always)]
pub(crate) unsafe fn changed<T: GroupState, R>(
    fcinfo: pg_sys::FunctionCallInfo,
    state: *mut T,
    change: impl FnOnce(&mut T) -> R,
) -> R {
    unsafe {
        let owned = (*state).owns_heap();
        let result = change(&mut *state);
        if !owned && (*state).owns_heap() {
            drop_on_reset(in_aggregate_context(fcinfo, MISUSE).value(), state);
        }
        result
    }
}

/// Where a [`GroupState`] is placed in its chunk: on the largest boundary up to 128 bytes (a
/// pair of cache lines the processor fetches together) that costs no bigger chunk than its
/// size needs (AllocSet's power of two). A bigger chunk to align a state does not pay: the
/// 128-byte `consensus_mode` state in a 128-byte chunk, as it falls, was ~5% faster over 10-row
/// groups than on a 128-byte boundary in a 256-byte chunk (less memory to fault in and cache).
const fn group_state_align<T>() -> usize {
    let size = std::mem::size_of::<T>();
    let chunk = size.next_power_of_two();
    let mut align = 128;
    while align > pg_sys::MAXIMUM_ALIGNOF as usize && size + align - pg_sys::MAXIMUM_ALIGNOF as usize > chunk {
        align /= 2;
    }
    if align < std::mem::align_of::<T>() {
        std::mem::align_of::<T>()
    } else {
        align
    }
}

/// A `T::default()` in the aggregate's memory context, with no reset callback (see
/// [`GroupState`]), placed as [`group_state_align`] says.
///
/// SAFETY: `fcinfo` is the live call's.
#[inline]
unsafe fn new_group_state<T: GroupState>(fcinfo: pg_sys::FunctionCallInfo) -> *mut T {
    let align = const { group_state_align::<T>() };
    let slack = align.saturating_sub(pg_sys::MAXIMUM_ALIGNOF as usize);
    // SAFETY: the allocation has room for a T at `align`; the T is written before use.
    unsafe {
        let context = in_aggregate_context(fcinfo, MISUSE).value();
        let raw = pg_sys::MemoryContextAlloc(context, std::mem::size_of::<T>() + slack) as *mut u8;
        let state = raw.add(raw.align_offset(align)) as *mut T;
        state.write(T::default());
        state
    }
}

/// Drop `value` when `context` is reset or deleted: a reset callback, allocated in `context`.
///
/// SAFETY: `value` lives in `context` and is not dropped otherwise.
unsafe fn drop_on_reset<T>(context: pg_sys::MemoryContext, value: *mut T) {
    #[pg_guard]
    unsafe extern "C-unwind" fn drop_value<T>(value: *mut std::ffi::c_void) {
        // SAFETY: `value` is the T registered below; the context calls this once, before it frees.
        unsafe { std::ptr::drop_in_place(value as *mut T) }
    }
    // SAFETY: the callback is written before it is registered, in the context it belongs to.
    unsafe {
        let callback = pg_sys::MemoryContextAlloc(context, std::mem::size_of::<pg_sys::MemoryContextCallback>())
            as *mut pg_sys::MemoryContextCallback;
        callback.write(pg_sys::MemoryContextCallback {
            func: Some(drop_value::<T>),
            arg: value as *mut std::ffi::c_void,
            next: std::ptr::null_mut(),
        });
        pg_sys::MemoryContextRegisterResetCallback(context, callback);
    }
}

/// The serial function of `consensus_mode` and `consensus_median`: the state (argument 0) in
/// its binary form `write` makes, as a bytea in the current memory context. NULL gives NULL.
///
/// SAFETY: argument 0 is NULL or a `T` of this aggregate.
pub(crate) unsafe fn serialized<T: GroupState>(
    fcinfo: pg_sys::FunctionCallInfo,
    write: fn(&mut T) -> Vec<u8>,
) -> pg_sys::Datum {
    unsafe {
        let Some(state) = Args::of(fcinfo).datum(0) else {
            return null_result(fcinfo);
        };
        let bytes = changed(fcinfo, state.cast_mut_ptr::<T>(), write);
        let header = pg_sys::VARHDRSZ;
        let bytea = pg_sys::palloc(header + bytes.len()) as *mut pg_sys::varlena;
        pgrx::set_varsize_4b(bytea, (header + bytes.len()) as i32);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (bytea as *mut u8).add(header), bytes.len());
        pg_sys::Datum::from(bytea)
    }
}

/// The deserial function of `consensus_mode` and `consensus_median`: the serialized state
/// (a bytea) passed on unchanged as the `internal` value, which only their combine function
/// ([`combine_serialized`]) receives and which reads and validates it. NULL gives NULL.
///
/// SAFETY: argument 0 is NULL or a bytea.
pub(crate) unsafe fn pass_serialized(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        match Args::of(fcinfo).datum(0) {
            Some(bytes) => bytes,
            None => null_result(fcinfo),
        }
    }
}

/// The result of a vote over `tallies` as the calling final function's row type
/// (`resi.consensus`), or NULL when no row voted; an error is raised as `name`'s.
///
/// SAFETY: `fcinfo` is the live call's, of a function returning `resi.consensus`.
pub(crate) unsafe fn form_vote(
    fcinfo: pg_sys::FunctionCallInfo,
    tallies: &resi_core::consensus::ModeState,
    name: &'static str,
) -> pg_sys::Datum {
    unsafe {
        let Some(w) = tallies.winner().or_raise(name) else {
            return null_result(fcinfo);
        };
        form_result(
            fcinfo,
            &[
                Field::Text(w.value),
                Field::Float8(w.confidence),
                Field::Float8(w.agreement),
                Field::Int4(w.supporters),
                Field::Int4(w.voters),
                Field::Float8(w.support_weight),
                Field::Float8(w.total_weight),
            ],
        )
    }
}

/// The error (SQLSTATE 0A000) of a support function called outside its aggregate.
const MISUSE: &str = "resi consensus support functions can only be called by their aggregates";

/// The state behind an `internal` transition value, created on the first row in the
/// aggregate's memory context (so it lives as long as the group, not the row).
///
/// SAFETY: `state` must be NULL or a value this module created with type `T`; PostgreSQL only
/// passes our own transition values to our support functions (they take `internal`, which SQL
/// cannot supply).
unsafe fn state_mut<T: Default>(state: &mut Internal, fcinfo: pg_sys::FunctionCallInfo) -> &mut T {
    unsafe { aggregate_state_mut(state, fcinfo, MISUSE) }
}

/// [`state_mut`] for any `internal`-state aggregate of the extension; `misuse` is the error
/// message (SQLSTATE 0A000) when called outside an aggregate.
///
/// SAFETY: `state` must be NULL or a value created by this function with type `T`.
pub(crate) unsafe fn aggregate_state_mut<'a, T: Default>(
    state: &'a mut Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    misuse: &'static str,
) -> &'a mut T {
    if !state.initialized() {
        // SAFETY: the context is the aggregate's, alive for this call and the group.
        let ptr = unsafe { new_in_context::<T>(in_aggregate_context(fcinfo, misuse).value()) };
        *state = Internal::from(Some(pg_sys::Datum::from(ptr)));
    }
    // SAFETY: the state is this function's T (the caller's contract), initialised above.
    unsafe { state.get_mut::<T>().expect("initialised above") }
}

/// A `T::default()` in `context` ([`place_in_context`]).
///
/// SAFETY: `context` is a live memory context.
unsafe fn new_in_context<T: Default>(context: pg_sys::MemoryContext) -> *mut T {
    unsafe { place_in_context(context, T::default()) }
}

/// `value` moved into `context`, dropped in place when the context is reset or deleted: one
/// palloc holds the value and the reset callback that drops it. Unlike a `Box` (pgrx's
/// `leak_and_drop_on_delete`), a group's state costs no malloc and free, and its inline part
/// counts against the memory PostgreSQL accounts to the aggregate (`work_mem`).
///
/// SAFETY: `context` is a live memory context.
pub(crate) unsafe fn place_in_context<T>(context: pg_sys::MemoryContext, value: T) -> *mut T {
    #[repr(C)]
    struct Slot<T> {
        callback: pg_sys::MemoryContextCallback,
        value: T,
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn drop_value<T>(value: *mut std::ffi::c_void) {
        // SAFETY: `value` is the T written below; the context calls this once, before it frees.
        unsafe { std::ptr::drop_in_place(value as *mut T) }
    }

    // palloc aligns to MAXALIGN (8 bytes); a state that needs more gets room to align. The
    // states are sized so that the allocation stays within a power of two (AllocSet's chunk).
    let align = std::mem::align_of::<Slot<T>>();
    let slack = if align > pg_sys::MAXIMUM_ALIGNOF as usize { align - 1 } else { 0 };
    // SAFETY: the allocation is large enough for a Slot<T> at its alignment; both fields are
    // written before the callback is registered, and the value outlives its uses (the
    // context's lifetime).
    unsafe {
        let raw = pg_sys::MemoryContextAlloc(context, std::mem::size_of::<Slot<T>>() + slack) as *mut u8;
        let slot = raw.add(raw.align_offset(align)) as *mut Slot<T>;
        let place = std::ptr::addr_of_mut!((*slot).value);
        place.write(value);
        let value = place;
        let callback = std::ptr::addr_of_mut!((*slot).callback);
        (*callback).func = Some(drop_value::<T>);
        (*callback).arg = value as *mut std::ffi::c_void;
        pg_sys::MemoryContextRegisterResetCallback(context, callback);
        value
    }
}

/// The aggregate's memory context, or an error when called outside an aggregate.
fn in_aggregate_context(fcinfo: pg_sys::FunctionCallInfo, misuse: &'static str) -> PgMemoryContexts {
    let mut context = std::ptr::null_mut();
    // SAFETY: fcinfo is the live call's; AggCheckCallContext only reads it.
    if fcinfo.is_null() || unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut context) } == 0 {
        ereport!(ERROR, PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, misuse);
    }
    PgMemoryContexts::For(context)
}

/// Take the value out of a deserialized (or other partial) state, leaving an empty one behind
/// for its memory context to drop.
///
/// SAFETY: `state` must be NULL or a value of type `T` made by this module.
unsafe fn take<T: Default>(state: &mut Internal) -> Option<T> {
    // SAFETY: the caller's contract above.
    unsafe { state.get_mut::<T>().map(std::mem::take) }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn mode(rows: &str) -> Option<String> {
        Spi::get_one::<String>(&format!("SELECT resi.consensus_mode(v, w)::text FROM (VALUES {rows}) t(v, w)")).unwrap()
    }

    fn median(rows: &str, tolerance: &str) -> Option<String> {
        Spi::get_one::<String>(&format!(
            "SELECT resi.consensus_median(v, w, {tolerance})::text FROM (VALUES {rows}) t(v, w)"
        ))
        .unwrap()
    }

    #[pg_test]
    fn mode_weighs_votes() {
        assert_eq!(
            mode("('FOR_SALE', 0.5::float8), ('SOLD', 0.25), ('SOLD', 0.125), ('FOR_SALE', 0.125)").as_deref(),
            Some("(FOR_SALE,0.625,0.5,2,4,0.625,1)")
        );
        // Ties: more supporters, then the smallest value.
        assert_eq!(
            mode("('b', 1::float8), ('a', 0.5), ('a', 0.5)").as_deref(),
            Some("(a,0.5,0.6666666666666666,2,3,1,2)")
        );
        assert_eq!(
            mode("('b', 1::float8), ('a', 1), ('c', 1)").as_deref(),
            Some("(a,0.3333333333333333,0.3333333333333333,1,3,1,3)")
        );
    }

    #[pg_test]
    fn mode_ignores_nulls_nan_and_non_positive_weights() {
        assert_eq!(mode("(NULL::text, 1::float8)"), None);
        assert_eq!(mode("('a', NULL::float8), ('a', 'NaN'), ('a', 0), ('a', -1), ('a', '-Infinity')"), None);
        assert_eq!(mode("('a', NULL::float8), ('b', 'NaN'), ('c', 2)").as_deref(), Some("(c,1,1,1,1,2,2)"));
        // Empty input and an all-filtered group give NULL, also grouped.
        assert_eq!(
            Spi::get_one::<bool>(
                "SELECT resi.consensus_mode(v, w) IS NULL FROM (SELECT 'a'::text v, 1::float8 w WHERE false) t"
            )
            .unwrap(),
            Some(true)
        );
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM (SELECT g, resi.consensus_mode(v, w) c FROM (VALUES (1, 'x', 1::float8), (2, NULL, 1)) t(g, v, w) GROUP BY g) s WHERE c IS NULL").unwrap(), Some(1));
    }

    #[pg_test(error = "resi.consensus_mode: consensus weight inf is out of range (weights must be at most 1e15)")]
    fn mode_infinite_weight_is_an_error() {
        mode("('a', 'Infinity'::float8)");
    }

    #[pg_test]
    fn mode_keeps_hostile_strings_verbatim() {
        let c = Spi::get_one::<String>(
            "SELECT (resi.consensus_mode(v, 1)).value FROM (VALUES ($$'); DROP TABLE resi.listings; --$$), (E'\\u0001'), ($$'); DROP TABLE resi.listings; --$$), (repeat('x', 1000000))) t(v)",
        )
        .unwrap();
        assert_eq!(c.as_deref(), Some("'); DROP TABLE resi.listings; --"));
    }

    #[pg_test]
    fn median_weighs_claims() {
        assert_eq!(
            median("(100::float8, 1::float8), (104, 1), (96, 1), (150, 1), (100, 1)", "0.05").as_deref(),
            Some("(100,0.8,0.8,4,5,100,104)")
        );
        assert_eq!(
            median("(1::float8, 1::float8), (2, 1), (3, 1), (4, 1)", "0").as_deref(),
            Some("(2,0.25,0.25,1,4,1,3)")
        );
        // A heavier voter moves the median.
        assert_eq!(
            median("(1::float8, 1::float8), (2, 1), (100, 3)", "0").as_deref(),
            Some("(100,0.6,0.3333333333333333,1,3,2,100)")
        );
        // NULL tolerance means exact agreement.
        assert_eq!(
            median("(5::float8, 1::float8), (5, 1), (6, 1)", "NULL").as_deref(),
            Some("(5,0.6666666666666666,0.6666666666666666,2,3,5,6)")
        );
    }

    #[pg_test]
    fn median_ignores_nulls_nan_and_infinities() {
        assert_eq!(median("(NULL::float8, 1::float8), ('NaN', 1), ('Infinity', 1), ('-Infinity', 1), (1, NULL), (1, 'NaN'), (1, 0), (1, -3)", "0.1"), None);
        assert_eq!(median("(NULL::float8, 1::float8), ('NaN', 9), (7, 2)", "0.1").as_deref(), Some("(7,1,1,1,1,7,7)"));
        assert_eq!(
            Spi::get_one::<bool>(
                "SELECT resi.consensus_median(v, 1, 0) IS NULL FROM (SELECT 1::float8 v WHERE false) t"
            )
            .unwrap(),
            Some(true)
        );
    }

    #[pg_test(error = "resi.consensus_median: consensus_median tolerance must be a finite number >= 0, got NaN")]
    fn median_nan_tolerance_is_an_error() {
        median("(1::float8, 1::float8)", "'NaN'");
    }

    #[pg_test(
        error = "resi.consensus_median: consensus_median tolerance must be the same for every row of a group, got 0.1 and 0.2"
    )]
    fn median_varying_tolerance_is_an_error() {
        Spi::get_one::<String>(
            "SELECT resi.consensus_median(v, 1, t)::text FROM (VALUES (1::float8, 0.1::float8), (2, 0.2)) x(v, t)",
        )
        .unwrap();
    }

    #[pg_test]
    fn grouped_and_window_use() {
        let by_zpid = Spi::get_one::<String>(
            "SELECT string_agg(format('%s=%s', zpid, (c).value), ',' ORDER BY zpid) FROM (
               SELECT zpid, resi.consensus_mode(status, trust) c
               FROM (VALUES ('1', 'SOLD', 0.9::float8), ('1', 'FOR_SALE', 0.2), ('2', 'FOR_SALE', 0.3), ('2', 'SOLD', 0.1), ('2', 'FOR_SALE', 0.1)) a(zpid, status, trust)
               GROUP BY zpid) s",
        )
        .unwrap();
        assert_eq!(by_zpid.as_deref(), Some("1=SOLD,2=FOR_SALE"));
        // As a window aggregate over a growing frame: the final function runs repeatedly.
        let running = Spi::get_one::<String>(
            "SELECT string_agg((c).value::text, ',' ORDER BY i) FROM (
               SELECT i, resi.consensus_median(v, 1, 0) OVER (ORDER BY i) c FROM (VALUES (1, 5::float8), (2, 1), (3, 9), (4, 2)) t(i, v)) s",
        )
        .unwrap();
        assert_eq!(running.as_deref(), Some("5,1,5,2"));
    }

    /// `resi.consensus_listing` gives, field by field, what the per-field aggregates give, and the
    /// same `field_consensus` jsonb and score the 0.2.0 refresh built from them with `to_jsonb`.
    #[pg_test]
    fn listing_consensus_equals_the_field_aggregates() {
        let differences = Spi::get_one::<i64>(
            r#"WITH claims AS (
                 SELECT (i % 37)::text AS zpid,
                        CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN format('https://z/%s_zpid/', i % 37)
                             ELSE format('https://z/%s_zpid/', i % 3) END AS uri,
                        (100000 + (i % 4) * 700 + (i % 37) * 1000)::bigint AS price,
                        CASE WHEN i % 6 = 0 THEN NULL ELSE format('%s Oak St', (i % 37) + (i % 3) / 2) END AS address,
                        1 + i % 3 AS bedrooms,
                        CASE i % 4 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 2.25 ELSE (i % 9) * 0.55 END AS bathrooms,
                        1000 + i % 40 AS living_area, 'SINGLE_FAMILY' AS home_type,
                        (ARRAY['FOR_SALE', 'SOLD', NULL])[1 + i % 3] AS home_status, i % 30 AS days_on_zillow,
                        '77494' AS zip_code, 'Katy' AS city, 'TX' AS state,
                        29.7 + (i % 3) * 1e-7 AS latitude, CASE WHEN i % 8 = 0 THEN 'Infinity' ELSE -95.8 END AS longitude,
                        (ARRAY[0.25, 0.5, 0, 0.125, 1.0 / 3])[1 + i % 5]::float8 AS w
                   FROM generate_series(1, 700) i),
               by_listing AS (
                 SELECT zpid,
                        resi.consensus_listing(zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type,
                            home_status, days_on_zillow, zip_code, city, state, latitude, longitude, w) AS l,
                        resi.consensus_mode(uri, w) FILTER (WHERE substring(uri FROM '(\d+)_zpid') = zpid) AS uri,
                        resi.consensus_median(price, w, 0.01) AS price,
                        resi.consensus_mode(address, w) AS address,
                        resi.consensus_mode(bedrooms::text, w) AS bedrooms,
                        resi.consensus_mode(CASE WHEN bathrooms BETWEEN 0 AND 99.9
                                                 THEN round(bathrooms::numeric, 1)::text END, w) AS bathrooms,
                        resi.consensus_median(living_area, w, 0.02) AS living_area,
                        resi.consensus_mode(home_type, w) AS home_type,
                        resi.consensus_mode(home_status, w) AS home_status,
                        resi.consensus_median(days_on_zillow, w, 0.1) AS days_on_zillow,
                        resi.consensus_mode(zip_code, w) AS zip_code,
                        resi.consensus_mode(city, w) AS city,
                        resi.consensus_mode(state, w) AS state,
                        resi.consensus_median(latitude, w, 1e-6) AS latitude,
                        resi.consensus_median(longitude, w, 1e-6) AS longitude
                   FROM claims GROUP BY zpid)
             SELECT count(*) FROM by_listing
              WHERE ((l).uri, (l).price, (l).address, (l).bedrooms, (l).bathrooms, (l).living_area, (l).home_type,
                     (l).home_status, (l).days_on_zillow, (l).zip_code, (l).city, (l).state, (l).latitude,
                     (l).longitude, (l).consensus_score, (l).field_consensus)
                    IS DISTINCT FROM
                    ((uri).value, round((price).value)::bigint, (address).value, (bedrooms).value::integer,
                     (bathrooms).value::numeric(3,1), round((living_area).value)::integer, (home_type).value,
                     (home_status).value, round((days_on_zillow).value)::integer, (zip_code).value, (city).value,
                     (state).value, (latitude).value, (longitude).value,
                     (SELECT avg(c) FROM unnest(ARRAY[(uri).confidence, (price).confidence, (address).confidence,
                        (bedrooms).confidence, (bathrooms).confidence, (living_area).confidence, (home_type).confidence,
                        (home_status).confidence, (days_on_zillow).confidence, (zip_code).confidence, (city).confidence,
                        (state).confidence, (latitude).confidence, (longitude).confidence]) c)::real,
                     jsonb_strip_nulls(jsonb_build_object(
                        'uri', to_jsonb(uri), 'price', to_jsonb(price), 'address', to_jsonb(address),
                        'bedrooms', to_jsonb(bedrooms), 'bathrooms', to_jsonb(bathrooms),
                        'living_area', to_jsonb(living_area), 'home_type', to_jsonb(home_type),
                        'home_status', to_jsonb(home_status), 'days_on_zillow', to_jsonb(days_on_zillow),
                        'zip_code', to_jsonb(zip_code), 'city', to_jsonb(city), 'state', to_jsonb(state),
                        'latitude', to_jsonb(latitude), 'longitude', to_jsonb(longitude))))"#,
        )
        .unwrap();
        assert_eq!(differences, Some(0));
        // A one-field listing: its typed value, its JSON and its score (a lone claim: confidence 1) agree.
        let listings = Spi::get_one::<i64>(
            "SELECT count(*) FROM (SELECT resi.consensus_listing(i::text, NULL, i, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, NULL, NULL, NULL, NULL, NULL, 1) l FROM generate_series(1, 37) i GROUP BY i) s WHERE (l).price = ((l).field_consensus->'price'->>'value')::bigint AND (l).consensus_score = 1",
        )
        .unwrap();
        assert_eq!(listings, Some(37));
    }

    /// Bathrooms vote as SQL's `round(v::numeric, 1)` would round them, halves included.
    #[pg_test]
    fn listing_consensus_rounds_bathrooms_like_numeric() {
        let mismatches = Spi::get_one::<i64>(
            "SELECT count(*) FROM (
               SELECT v, (resi.consensus_listing('1', NULL, NULL, NULL, NULL, v, NULL, NULL, NULL, NULL, NULL, NULL,
                          NULL, NULL, NULL, 1)).bathrooms AS ours
                 FROM (SELECT i / 100.0::float8 FROM generate_series(-10, 10010) i
                       UNION ALL SELECT i / 1000.0::float8 FROM generate_series(0, 2000) i
                       UNION ALL SELECT i * 0.05::float8 FROM generate_series(0, 2000) i
                       UNION ALL SELECT 1.0 / i FROM generate_series(1, 500) i) t(v)
                GROUP BY v) s
              WHERE ours IS DISTINCT FROM CASE WHEN v BETWEEN 0 AND 99.9 THEN round(v::numeric, 1) END",
        )
        .unwrap();
        assert_eq!(mismatches, Some(0));
    }

    /// The support functions take `internal`, which SQL cannot supply: hand-made bytes never
    /// reach the deserialize functions (and if they did, they are validated: resi_core tests).
    #[pg_test(error = "cannot cast type unknown to internal")]
    fn support_functions_are_not_callable_from_sql() {
        Spi::run("SELECT resi.consensus_mode_deserialize('\\x4d01ffffffff'::bytea, NULL::internal)").unwrap();
    }

    /// The loops over a group's values check for interrupts with PostgreSQL's own check (the
    /// hook `_PG_init` installs): a cancel request pending when a median of 100k values is
    /// computed raises 57014 from inside the loop. (A query is cancelled between rows by the
    /// executor anyway; this is the part that runs in one call: final, combine, deserialize.)
    #[pg_test(error = "canceling statement due to user request")]
    fn a_pending_cancel_stops_the_rust_loops() {
        let mut state = resi_core::consensus::MedianState::default();
        for i in 0..100_000 {
            state.add(Some(f64::from(i)), Some(1.0), Some(0.01)).unwrap();
        }
        // SAFETY: what PostgreSQL's SIGINT handler sets; this backend is the only reader.
        unsafe {
            pgrx::pg_sys::QueryCancelPending = 1;
            pgrx::pg_sys::InterruptPending = 1;
        }
        let result = state.result();
        panic!("the loop ran to its end without noticing the cancel: {result:?}");
    }
}
