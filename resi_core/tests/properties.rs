//! Property tests (proptest; issue 6's fuzzing where `cargo fuzz` needs a nightly toolchain):
//! key parsing, row normalisation, the canonical form behind `resi.listing_hash`, and the
//! aggregates' binary states (the properties are in props/). `make test` runs each with a few
//! hundred cases, replaying proptest-regressions/ first; `fuzz.rs` runs them for a time budget.

mod props;

use proptest::prelude::*;

proptest! {
    #[test]
    fn key_parsing_never_panics_and_reads_back_what_it_was_given(input in props::key_input()) {
        props::key_parsing(input)?;
    }

    #[test]
    fn normalisation_never_panics_and_keeps_its_promises(raw in props::raw_listing()) {
        props::normalisation(raw)?;
    }

    #[test]
    fn the_canonical_form_is_a_fixed_point_and_ignores_member_order(value in props::json_value()) {
        props::canonical_form(value)?;
    }

    #[test]
    fn arbitrary_bytes_never_crash_the_state_readers(input in props::state_bytes()) {
        props::state_readers(input)?;
    }

    #[test]
    fn states_round_trip_through_their_binary_form(rows in props::votes()) {
        props::state_round_trips(rows)?;
    }
}
