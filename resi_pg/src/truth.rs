//! `resi.discover_truth(object, property, source, value, source_group) → jsonb`: truth
//! discovery for any claims, over `resi_core::truth` (an Accu-style fixed point with Beta
//! posteriors, lower-bound vote weights and one vote per group of dependent sources).
//!
//! Declared in sql/truth.sql as `CREATE AGGREGATE … (STYPE = internal, SFUNC, FINALFUNC)`: the
//! method needs every claim at once (accuracies are learned over all items), so it has no
//! combine step.

use crate::consensus::aggregate_state_mut;
use crate::error::OrRaise;
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::JsonB;
use resi_core::truth::{discover, Audit, Claim, Options};
use serde_json::json;
use std::collections::HashMap;

const NAME: &str = "resi.discover_truth";

/// One row of the aggregate: a claim, or an audit when `source` is None.
struct Row {
    object: String,
    property: String,
    source: Option<String>,
    value: String,
    group: Option<String>,
}

/// The rows of one group.
#[derive(Default)]
struct TruthState {
    rows: Vec<Row>,
}

/// Transition: keep one row. A row without object, property or value is skipped; a row
/// without a source is an audit (the item's true value). IMMUTABLE, PARALLEL SAFE, not strict;
/// callable only by the aggregate (0A000 otherwise).
#[pg_extern(immutable, parallel_safe)]
fn discover_truth_transition(
    mut state: Internal,
    object: Option<&str>,
    property: Option<&str>,
    source: Option<&str>,
    value: Option<&str>,
    source_group: Option<&str>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    // SAFETY: the transition value of discover_truth is always a TruthState.
    let truth = unsafe {
        aggregate_state_mut::<TruthState>(
            &mut state,
            fcinfo,
            "resi.discover_truth_transition can only be called by resi.discover_truth",
        )
    };
    if let (Some(o), Some(p), Some(v)) = (object, property, value) {
        truth.rows.push(Row {
            object: o.into(),
            property: p.into(),
            source: source.map(Into::into),
            value: v.into(),
            group: source_group.map(Into::into),
        });
    }
    state
}

/// Final: run the method with its defaults. `{"values": [{object, property, value, confidence,
/// supporters, groups, audited}], "sources": [{source, group, claims, accuracy, lower_bound,
/// weight, group_weight}], "iterations", "converged"}`; NULL for no rows. IMMUTABLE, PARALLEL
/// SAFE. A source claiming two values for one item, or two audited values for one item, raise
/// 22023.
#[pg_extern(immutable, parallel_safe)]
fn discover_truth_final(state: Internal) -> Option<JsonB> {
    // SAFETY: a TruthState of this aggregate.
    let truth = unsafe { state.get::<TruthState>() }?;
    let mut claims = Vec::new();
    let mut audits = Vec::new();
    let mut groups = HashMap::new();
    for Row { object, property, source, value, group } in &truth.rows {
        match source {
            Some(source) => {
                claims.push(Claim { object, property, source, value });
                if let Some(group) = group {
                    groups.insert(source.as_str(), group.as_str());
                }
            }
            None => audits.push(Audit { object, property, value }),
        }
    }
    let found = discover(&claims, &audits, &groups, &Options::default()).or_raise(NAME);
    let values: Vec<_> = found
        .values
        .iter()
        .map(|v| {
            json!({"object": v.object, "property": v.property, "value": v.value, "confidence": v.confidence,
                   "supporters": v.supporters, "groups": v.groups, "audited": v.audited})
        })
        .collect();
    let sources: Vec<_> = found
        .sources
        .iter()
        .map(|s| {
            json!({"source": s.source, "group": s.group, "claims": s.claims, "accuracy": s.accuracy,
                   "lower_bound": s.lower_bound, "weight": s.weight, "group_weight": s.group_weight})
        })
        .collect();
    Some(JsonB(
        json!({"values": values, "sources": sources, "iterations": found.iterations, "converged": found.converged}),
    ))
}
