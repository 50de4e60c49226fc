//! Support functions of `resi.distributed_consensus_mode(value text, weight double precision)` and
//! `resi.distributed_consensus_median(value, weight, tolerance double precision)`: the same
//! aggregates as `resi.consensus_mode` and `resi.consensus_median` (the same rows ignored, the
//! same errors, the same answers bit for bit), with a transition state of a concrete type,
//! `resi.consensus_mode_tally` and `resi.consensus_median_tally`, instead of `internal`.
//!
//! Citus splits an aggregate over many shards only when its state is a real type with a combine
//! function: each worker aggregates its shards and ships the state as text (the type's output
//! function), the coordinator reads it back (the input function) and combines (issue 18). An
//! `internal` state cannot travel, so over `resi.consensus_mode` Citus pulls every row to the
//! coordinator instead.
//!
//! While a group is aggregated its tally is an *expanded object* (PostgreSQL's
//! `utils/expandeddatum.h`): the Rust state ([`ModeState`], [`MedianState`]) in a memory
//! context under the aggregate's ([`tally_context`]), changed in place by every row and never
//! flattened per row. Wherever PostgreSQL needs the value as bytes (a tuple sent from a parallel worker, a
//! row stored, the output function) it asks the object for its flat form: a varlena holding the
//! state's binary form (`serialize`, the bytes the `internal` aggregates' serial functions
//! write). The text form is that binary form in hex, `\x…` as a bytea prints. Flat input is
//! validated as the combine step of the `internal` aggregates validates it: malformed bytes are
//! an error (22P02 from text, XX001 otherwise), never a wrong answer.
//!
//! These are for analytics over many listings (a city's prices over a distributed table); the
//! fold's per-listing consensus uses the `internal` aggregates.

use super::median::form_numeric_consensus;
use super::{form_vote, in_aggregate_context, place_in_context, MISUSE};
use crate::error::{raise_code, OrRaise};
use crate::fmgr::{fmgr_function, null_result, Args};
use pgrx::pg_sys;
use pgrx::prelude::*;
use resi_core::consensus::{MedianState, ModeState};

/// What a tally needs of the state it wraps.
pub(crate) trait TallyState: Default + 'static {
    /// The name errors are raised with: the internal-state aggregate's, whose errors these are
    /// (and the portable edition's, where the two aggregates share their support functions).
    const NAME: &'static str;
    /// The SQL type's name, in input errors.
    const TYPE: &'static str;
    /// The methods of this state's expanded objects; their address tells our tallies apart.
    fn methods() -> &'static pg_sys::ExpandedObjectMethods;
    /// The state's binary form.
    fn write(&mut self) -> Vec<u8>;
    /// Add a state's binary form to this one, validating it.
    fn merge_bytes(&mut self, bytes: &[u8]) -> resi_core::error::Result<()>;
}

impl TallyState for ModeState {
    const NAME: &'static str = "resi.consensus_mode";
    const TYPE: &'static str = "resi.consensus_mode_tally";

    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        static METHODS: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
            get_flat_size: Some(flat_size::<ModeState>),
            flatten_into: Some(flatten_into::<ModeState>),
        };
        &METHODS
    }

    fn write(&mut self) -> Vec<u8> {
        self.serialize()
    }

    fn merge_bytes(&mut self, bytes: &[u8]) -> resi_core::error::Result<()> {
        self.merge_serialized(bytes)
    }
}

impl TallyState for MedianState {
    const NAME: &'static str = "resi.consensus_median";
    const TYPE: &'static str = "resi.consensus_median_tally";

    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        static METHODS: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
            get_flat_size: Some(flat_size::<MedianState>),
            flatten_into: Some(flatten_into::<MedianState>),
        };
        &METHODS
    }

    /// Collapsed first (the same claims, one run per value), which the binary form is anyway.
    fn write(&mut self) -> Vec<u8> {
        self.collapse().or_raise(Self::NAME);
        self.serialize().or_raise(Self::NAME)
    }

    fn merge_bytes(&mut self, bytes: &[u8]) -> resi_core::error::Result<()> {
        self.merge_serialized(bytes)
    }
}

/// A tally as an expanded object: PostgreSQL's header first, then the state.
#[repr(C)]
struct Tally<T> {
    header: pg_sys::ExpandedObjectHeader,
    state: T,
    /// The state's binary form as last written, until the state changes: PostgreSQL asks for
    /// the flat size (twice when it forms a tuple) and then flattens, and each would otherwise
    /// write it again.
    flat: Option<Vec<u8>>,
}

impl<T: TallyState> Tally<T> {
    /// A new empty tally in the memory context the tallies under `parent` (the aggregate's
    /// context) share ([`tally_context`]). The state is dropped when that context goes.
    ///
    /// SAFETY: `parent` is a live memory context.
    unsafe fn new_in(parent: pg_sys::MemoryContext) -> &'static mut Tally<T> {
        unsafe {
            let context = tally_context(parent);
            let tally =
                place_in_context(context, Tally { header: std::mem::zeroed(), state: T::default(), flat: None });
            pg_sys::EOH_init_header(&mut (*tally).header, T::methods(), context);
            &mut *tally
        }
    }

    /// The state for changing: its cached binary form is dropped.
    fn state_mut(&mut self) -> &mut T {
        self.flat = None;
        &mut self.state
    }

    /// The state's binary form, written once per change.
    fn flat(&mut self) -> &[u8] {
        if self.flat.is_none() {
            self.flat = Some(self.state.write());
        }
        self.flat.as_deref().expect("written above")
    }

    /// The read-write pointer the transition and combine functions return.
    fn rw_datum(&mut self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.header.eoh_rw_ptr.as_mut_ptr())
    }
}

thread_local! {
    /// (aggregate context, the tallies' context under it) for every such pair alive: a backend
    /// runs one thread, so this is the backend's list.
    static TALLY_CONTEXTS: std::cell::RefCell<Vec<(usize, usize)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The memory context that holds the tallies of every group under `parent` (an aggregate's
/// context), created as its child on first use and forgotten when it is reset or deleted (with
/// `parent`'s reset, at the end of a group or of a hash table's batch).
///
/// The executor keeps a read-write expanded transition value in place only when the object's
/// context is a child of the aggregate's (else it copies it flat after every row), so a tally
/// cannot live in the aggregate's context itself; and a context per group would make hash
/// aggregation quadratic: it counts the memory of the aggregate's context and every child each
/// time it adds a group (100,000 groups took 29 s instead of 0.3 s). Sharing one context is safe
/// because nothing deletes a tally alone: PostgreSQL (and Citus) delete an expanded transition
/// value only when a transition function returns another one, and ours return the value they
/// were given, or a new tally when it was NULL, flat or read-only.
///
/// SAFETY: `parent` is a live memory context.
unsafe fn tally_context(parent: pg_sys::MemoryContext) -> pg_sys::MemoryContext {
    let known = TALLY_CONTEXTS.with_borrow(|pairs| pairs.iter().find(|(p, _)| *p == parent as usize).map(|&(_, c)| c));
    if let Some(context) = known {
        return context as pg_sys::MemoryContext;
    }
    #[pg_guard]
    unsafe extern "C-unwind" fn forget(context: *mut std::ffi::c_void) {
        TALLY_CONTEXTS.with_borrow_mut(|pairs| pairs.retain(|&(_, c)| c != context as usize));
    }
    // SAFETY: `parent` is live; the callback is written before it is registered, in the context
    // it watches.
    unsafe {
        // ALLOCSET_DEFAULT_SIZES.
        let context = pg_sys::AllocSetContextCreateInternal(
            parent,
            c"resi consensus tallies".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        );
        let callback = pg_sys::MemoryContextAlloc(context, std::mem::size_of::<pg_sys::MemoryContextCallback>())
            as *mut pg_sys::MemoryContextCallback;
        callback.write(pg_sys::MemoryContextCallback {
            func: Some(forget),
            arg: context as *mut std::ffi::c_void,
            next: std::ptr::null_mut(),
        });
        pg_sys::MemoryContextRegisterResetCallback(context, callback);
        TALLY_CONTEXTS.with_borrow_mut(|pairs| pairs.push((parent as usize, context as usize)));
        context
    }
}

/// `get_flat_size` of a tally: the varlena header and the binary form.
#[pg_guard]
unsafe extern "C-unwind" fn flat_size<T: TallyState>(header: *mut pg_sys::ExpandedObjectHeader) -> pg_sys::Size {
    // SAFETY: PostgreSQL calls this with one of our tallies of T (the methods are T's).
    let tally = unsafe { &mut *(header as *mut Tally<T>) };
    pg_sys::VARHDRSZ + tally.flat().len()
}

/// `flatten_into` of a tally: the flat varlena, into the `size` bytes PostgreSQL allocated after
/// asking [`flat_size`].
#[pg_guard]
unsafe extern "C-unwind" fn flatten_into<T: TallyState>(
    header: *mut pg_sys::ExpandedObjectHeader,
    result: *mut std::ffi::c_void,
    size: pg_sys::Size,
) {
    // SAFETY: as flat_size; `result` has `size` bytes, which flat_size computed.
    unsafe {
        let tally = &mut *(header as *mut Tally<T>);
        let bytes = tally.flat();
        assert_eq!(size, pg_sys::VARHDRSZ + bytes.len(), "flatten_into: the size flat_size gave");
        write_varlena(result as *mut u8, bytes);
    }
}

/// `bytes` as a varlena with a 4-byte header at `out`, which has room for both.
///
/// SAFETY: `out` is writable for `VARHDRSZ + bytes.len()` bytes.
unsafe fn write_varlena(out: *mut u8, bytes: &[u8]) {
    unsafe {
        pgrx::set_varsize_4b(out as *mut pg_sys::varlena, (pg_sys::VARHDRSZ + bytes.len()) as i32);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(pg_sys::VARHDRSZ), bytes.len());
    }
}

/// A tally argument as it arrives.
enum TallyArg<'a, T> {
    /// Our expanded object, passed read-write: the aggregate's own state, to change in place.
    Writable(&'a mut Tally<T>),
    /// Our expanded object passed read-only (a final function's argument): not to be changed
    /// (a median's collapse, which leaves the same claims, is the one change made).
    ReadOnly(&'a mut Tally<T>),
    /// A flat value (from text, a table, a parallel worker's tuple), detoasted.
    Flat(&'a [u8]),
}

impl<'a, T: TallyState> TallyArg<'a, T> {
    /// The tally's binary form: a flat value's bytes, or an expanded one's (written once per
    /// change). Another tally may be changed while these are read, never this one.
    fn bytes(self) -> &'a [u8] {
        match self {
            TallyArg::Writable(tally) | TallyArg::ReadOnly(tally) => tally.flat(),
            TallyArg::Flat(bytes) => bytes,
        }
    }
}

impl Args {
    /// Argument `i`, a tally of `T`, or `None` when it is NULL.
    ///
    /// SAFETY: argument `i` exists and is of `T`'s tally type (SQL types guarantee it).
    unsafe fn tally<'a, T: TallyState>(&self, i: usize) -> Option<TallyArg<'a, T>> {
        unsafe {
            let datum = self.datum(i)?;
            let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
            if pgrx::varlena::varatt_is_1b_e(ptr) {
                let tag = *(ptr as *const u8).add(1) as u32;
                if tag == pg_sys::vartag_external::VARTAG_EXPANDED_RW
                    || tag == pg_sys::vartag_external::VARTAG_EXPANDED_RO
                {
                    let header = pg_sys::DatumGetEOHP(datum);
                    if !std::ptr::eq((*header).eoh_methods, T::methods()) {
                        error!("{}: argument {i} is an expanded object of another type", T::NAME);
                    }
                    let tally = &mut *(header as *mut Tally<T>);
                    return Some(if tag == pg_sys::vartag_external::VARTAG_EXPANDED_RW {
                        TallyArg::Writable(tally)
                    } else {
                        TallyArg::ReadOnly(tally)
                    });
                }
            }
            self.bytes(i).map(TallyArg::Flat)
        }
    }

    /// The group's tally (argument 0) to change in place: the aggregate's own expanded object,
    /// or a new one in the aggregate's memory context (a NULL state: the group's first row or
    /// partial), holding what a flat or read-only argument held. Called outside an aggregate:
    /// 0A000.
    ///
    /// SAFETY: argument 0 exists and is of `T`'s tally type.
    unsafe fn tally_to_change<'a, T: TallyState>(&self) -> &'a mut Tally<T> {
        unsafe {
            let context = in_aggregate_context(self.fcinfo(), MISUSE).value();
            let given = match self.tally::<T>(0) {
                Some(TallyArg::Writable(tally)) => return tally,
                given => given,
            };
            let tally = Tally::<T>::new_in(context);
            if let Some(given) = given {
                tally.state_mut().merge_bytes(given.bytes()).or_raise(T::NAME);
            }
            tally
        }
    }
}

/// The combine function: argument 1's tally added to the group's (argument 0). NULL and NULL
/// give NULL.
///
/// SAFETY: both arguments are NULL or `T`'s tallies.
unsafe fn combine<T: TallyState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let Some(second) = args.tally::<T>(1) else {
            return args.datum(0).unwrap_or_else(|| null_result(fcinfo));
        };
        let first = args.tally_to_change::<T>();
        first.state_mut().merge_bytes(second.bytes()).or_raise(T::NAME);
        first.rw_datum()
    }
}

/// The input function: `\x` and the binary form in hex, validated (22P02 when it is not one).
///
/// SAFETY: argument 0 is a C string.
unsafe fn input<T: TallyState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let invalid = |why: &str| -> ! {
        raise_code(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            T::NAME,
            &format!("invalid input for type {}: {why}", T::TYPE),
        )
    };
    // SAFETY: the caller's contract.
    let text = unsafe { std::ffi::CStr::from_ptr(Args::of(fcinfo).datum(0).expect("STRICT").cast_mut_ptr()) };
    let Some(hex) = text.to_bytes().strip_prefix(b"\\x") else { invalid("it must start with \\x") };
    let bytes = decode_hex(hex).unwrap_or_else(|| invalid("it is not an even number of hexadecimal digits"));
    if let Err(e) = T::default().merge_bytes(&bytes) {
        invalid(&e.message);
    }
    // SAFETY: palloc'd with room for the header and the bytes.
    unsafe {
        let out = pg_sys::palloc(pg_sys::VARHDRSZ + bytes.len()) as *mut u8;
        write_varlena(out, &bytes);
        pg_sys::Datum::from(out)
    }
}

/// The output function: `\x` and the binary form in hex.
///
/// SAFETY: argument 0 is `T`'s tally.
unsafe fn output<T: TallyState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        use std::fmt::Write;
        let bytes = Args::of(fcinfo).tally::<T>(0).expect("STRICT").bytes();
        let mut text = String::with_capacity(2 + 2 * bytes.len());
        text.push_str("\\x");
        for b in bytes {
            write!(text, "{b:02x}").expect("writing to a String does not fail");
        }
        pg_sys::Datum::from(pgrx::PgMemoryContexts::CurrentMemoryContext.pstrdup(&text))
    }
}

/// `hex` (pairs of hexadecimal digits, either case) as bytes, or `None`.
fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// The final function's state: the tally's, or one read from a flat value.
///
/// SAFETY: argument 0 is NULL or `T`'s tally.
unsafe fn final_state<T: TallyState>(fcinfo: pg_sys::FunctionCallInfo, read: &mut T) -> Option<&mut T> {
    unsafe {
        match Args::of(fcinfo).tally::<T>(0)? {
            TallyArg::Writable(tally) | TallyArg::ReadOnly(tally) => Some(tally.state_mut()),
            TallyArg::Flat(bytes) => {
                read.merge_bytes(bytes).or_raise(T::NAME);
                Some(read)
            }
        }
    }
}

fmgr_function!(
    /// `resi.consensus_mode_tally_transition(state resi.consensus_mode_tally, value text, weight double
    /// precision) → resi.consensus_mode_tally`: count one row (sql/native/consensus.sql).
    consensus_mode_tally_transition_wrapper,
    pg_finfo_consensus_mode_tally_transition_wrapper,
    mode_transition
);

/// SAFETY: PostgreSQL calls this with the aggregate's three arguments.
unsafe fn mode_transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let tally = args.tally_to_change::<ModeState>();
        tally.state_mut().add_bytes(args.bytes(1), args.f64(2)).or_raise(ModeState::NAME);
        tally.rw_datum()
    }
}

fmgr_function!(
    /// `resi.consensus_median_tally_transition(state resi.consensus_median_tally, value, weight,
    /// tolerance double precision) → resi.consensus_median_tally`: count one row.
    consensus_median_tally_transition_wrapper,
    pg_finfo_consensus_median_tally_transition_wrapper,
    median_transition
);

/// SAFETY: PostgreSQL calls this with the aggregate's four arguments.
unsafe fn median_transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let tally = args.tally_to_change::<MedianState>();
        tally.state_mut().add(args.f64(1), args.f64(2), args.f64(3)).or_raise(MedianState::NAME);
        tally.rw_datum()
    }
}

fmgr_function!(
    /// `resi.consensus_mode_tally_combine(first, second resi.consensus_mode_tally) →
    /// resi.consensus_mode_tally`: the combine function.
    consensus_mode_tally_combine_wrapper,
    pg_finfo_consensus_mode_tally_combine_wrapper,
    combine::<ModeState>
);

fmgr_function!(
    /// `resi.consensus_median_tally_combine(first, second resi.consensus_median_tally) →
    /// resi.consensus_median_tally`: the combine function.
    consensus_median_tally_combine_wrapper,
    pg_finfo_consensus_median_tally_combine_wrapper,
    combine::<MedianState>
);

fmgr_function!(
    /// `resi.consensus_mode_tally_in(cstring) → resi.consensus_mode_tally`.
    consensus_mode_tally_in_wrapper,
    pg_finfo_consensus_mode_tally_in_wrapper,
    input::<ModeState>
);

fmgr_function!(
    /// `resi.consensus_median_tally_in(cstring) → resi.consensus_median_tally`.
    consensus_median_tally_in_wrapper,
    pg_finfo_consensus_median_tally_in_wrapper,
    input::<MedianState>
);

fmgr_function!(
    /// `resi.consensus_mode_tally_out(resi.consensus_mode_tally) → cstring`.
    consensus_mode_tally_out_wrapper,
    pg_finfo_consensus_mode_tally_out_wrapper,
    output::<ModeState>
);

fmgr_function!(
    /// `resi.consensus_median_tally_out(resi.consensus_median_tally) → cstring`.
    consensus_median_tally_out_wrapper,
    pg_finfo_consensus_median_tally_out_wrapper,
    output::<MedianState>
);

fmgr_function!(
    /// `resi.consensus_mode_tally_final(resi.consensus_mode_tally) → resi.consensus`: the final
    /// function; NULL when no row voted.
    consensus_mode_tally_final_wrapper,
    pg_finfo_consensus_mode_tally_final_wrapper,
    mode_final
);

/// SAFETY: PostgreSQL calls this with NULL or a tally of the mode.
unsafe fn mode_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let mut read = ModeState::default();
        match final_state(fcinfo, &mut read) {
            Some(state) => form_vote(fcinfo, state, ModeState::NAME),
            None => null_result(fcinfo),
        }
    }
}

fmgr_function!(
    /// `resi.consensus_median_tally_final(resi.consensus_median_tally) →
    /// resi.numeric_consensus`: the final function; NULL when no row voted.
    consensus_median_tally_final_wrapper,
    pg_finfo_consensus_median_tally_final_wrapper,
    median_final
);

/// SAFETY: PostgreSQL calls this with NULL or a tally of the median.
unsafe fn median_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let mut read = MedianState::default();
        match final_state(fcinfo, &mut read) {
            Some(state) => form_numeric_consensus(fcinfo, state.result().or_raise(MedianState::NAME)),
            None => null_result(fcinfo),
        }
    }
}
