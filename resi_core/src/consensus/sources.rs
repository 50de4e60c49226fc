//! One vote per independent source: which of a listing's claims vote, and with what weight.
//!
//! A listing's claims come from miners; a miner votes for its *member* (its group of dependent
//! miners, or itself alone). Claims with the same signature (byte copies) belong to the member
//! of the earliest upload among them (then the smallest hotkey), whoever uploaded the copies. A
//! source votes once, with the claim of its heaviest member: greatest trust, then newest upload,
//! then smallest hotkey. That claim's weight is its trust × [`claim_recency`] of how much older
//! its upload is than the listing's newest claim; the other claims carry no weight.
//!
//! Which claim leads a source depends on all of the listing's claims, so [`SourceClaims`] keeps
//! them (their text in one buffer) until the last is in, then feeds the leads to a
//! [`ListingState`]. This is what `resi.listing_consensus` computed before 0.5.0 with two sorts
//! and three window functions per claim; hotkeys compare as bytes (`COLLATE "C"`), so the
//! answer does not depend on the database's collation.

use super::listing::{Claim, ListingState};
use crate::error::Result;
use crate::trust::claim_recency;
use std::cmp::Ordering;
use std::collections::HashMap;

/// One claim as the aggregate receives it.
pub struct SourceClaim<'a> {
    pub claim: Claim<'a>,
    /// The weight the miner votes with (its group's pooled trust, else its own).
    pub trust: Option<f64>,
    /// The miner's group, or the miner itself.
    pub member: &'a str,
    pub miner_hotkey: &'a str,
    /// `resi.claim_signature`; `None`: the claim is its member's own.
    pub signature: Option<i64>,
    /// Upload time, microseconds (any epoch: only differences count).
    pub submitted_at: i64,
}

/// The claims of one listing, kept until all are in.
#[derive(Default)]
pub struct SourceClaims {
    text: String,
    claims: Vec<Kept>,
}

/// A byte range of [`SourceClaims::text`].
#[derive(Clone, Copy)]
struct Span(u32, u32);

struct Kept {
    zpid: Option<Span>,
    uri: Option<Span>,
    address: Option<Span>,
    home_type: Option<Span>,
    home_status: Option<Span>,
    zip_code: Option<Span>,
    city: Option<Span>,
    state: Option<Span>,
    member: Span,
    miner_hotkey: Span,
    price: Option<i64>,
    bedrooms: Option<i32>,
    bathrooms: Option<f64>,
    living_area: Option<i32>,
    days_on_zillow: Option<i32>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    trust: Option<f64>,
    signature: Option<i64>,
    submitted_at: i64,
}

/// The votes of a listing's sources, fed to a [`ListingState`].
pub struct SourceVotes {
    pub listing: ListingState,
    /// Sources whose leading claim has trust > 0 (`resi.listings.voting_groups`).
    pub voting_sources: i32,
}

impl SourceClaims {
    pub fn add(&mut self, claim: &SourceClaim<'_>) {
        let mut keep = |text: &str| {
            let start = self.text.len();
            self.text.push_str(text);
            Span(start as u32, text.len() as u32)
        };
        let c = &claim.claim;
        let kept = Kept {
            zpid: c.zpid.map(&mut keep),
            uri: c.uri.map(&mut keep),
            address: c.address.map(&mut keep),
            home_type: c.home_type.map(&mut keep),
            home_status: c.home_status.map(&mut keep),
            zip_code: c.zip_code.map(&mut keep),
            city: c.city.map(&mut keep),
            state: c.state.map(&mut keep),
            member: keep(claim.member),
            miner_hotkey: keep(claim.miner_hotkey),
            price: c.price,
            bedrooms: c.bedrooms,
            bathrooms: c.bathrooms,
            living_area: c.living_area,
            days_on_zillow: c.days_on_zillow,
            latitude: c.latitude,
            longitude: c.longitude,
            trust: claim.trust,
            signature: claim.signature,
            submitted_at: claim.submitted_at,
        };
        assert!(self.text.len() <= u32::MAX as usize, "a listing's claims hold less than 4 GB of text");
        self.claims.push(kept);
    }

    /// Each source's leading claim, weighted by trust × recency (`half_life_seconds` as
    /// `resi.claim_half_life`), in a fresh [`ListingState`]. Errors as [`ListingState::add`]
    /// (a weight above [`super::MAX_WEIGHT`]).
    pub fn votes(&self, half_life_seconds: f64) -> Result<SourceVotes> {
        let text = |span: Span| &self.text[span.0 as usize..(span.0 + span.1) as usize];
        let upload_order = |a: &Kept, b: &Kept| {
            a.submitted_at.cmp(&b.submitted_at).then_with(|| text(a.miner_hotkey).cmp(text(b.miner_hotkey)))
        };
        // The earliest claim of each signature names the source of its copies.
        let mut originals: HashMap<i64, &Kept> = HashMap::new();
        for claim in &self.claims {
            if let Some(signature) = claim.signature {
                originals
                    .entry(signature)
                    .and_modify(|first| {
                        if upload_order(claim, first) == Ordering::Less {
                            *first = claim;
                        }
                    })
                    .or_insert(claim);
            }
        }
        let source = |claim: &Kept| match claim.signature {
            Some(signature) => text(originals[&signature].member),
            None => text(claim.member),
        };
        // Each source's heaviest claim: greatest trust, newest upload, smallest hotkey.
        let mut leads: HashMap<&str, usize> = HashMap::new();
        for (i, claim) in self.claims.iter().enumerate() {
            leads
                .entry(source(claim))
                .and_modify(|lead| {
                    let best = &self.claims[*lead];
                    let heavier = trust_order(claim.trust, best.trust)
                        .then_with(|| claim.submitted_at.cmp(&best.submitted_at))
                        .then_with(|| text(best.miner_hotkey).cmp(text(claim.miner_hotkey)));
                    if heavier == Ordering::Greater {
                        *lead = i;
                    }
                })
                .or_insert(i);
        }
        let newest = self.claims.iter().map(|c| c.submitted_at).max().unwrap_or(0);
        let mut votes = SourceVotes { listing: ListingState::default(), voting_sources: 0 };
        for &i in leads.values() {
            let c = &self.claims[i];
            let age_seconds = (newest - c.submitted_at) as f64 / 1e6;
            let weight = c.trust.map(|trust| trust * claim_recency(age_seconds, half_life_seconds));
            let claim = Claim {
                zpid: c.zpid.map(text),
                uri: c.uri.map(text),
                price: c.price,
                address: c.address.map(text),
                bedrooms: c.bedrooms,
                bathrooms: c.bathrooms,
                living_area: c.living_area,
                home_type: c.home_type.map(text),
                home_status: c.home_status.map(text),
                days_on_zillow: c.days_on_zillow,
                zip_code: c.zip_code.map(text),
                city: c.city.map(text),
                state: c.state.map(text),
                latitude: c.latitude,
                longitude: c.longitude,
            };
            votes.listing.add(&claim, weight)?;
            votes.voting_sources += i32::from(c.trust.is_some_and(|t| t > 0.0));
        }
        Ok(votes)
    }
}

/// Trust in PostgreSQL's ascending order for `double precision`: numbers, then NaN, then NULL
/// (an `ORDER BY trust DESC` puts NULL first, then NaN).
fn trust_order(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a.partial_cmp(&b).expect("neither is NaN"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(
        member: &'a str,
        hotkey: &'a str,
        price: i64,
        trust: f64,
        signature: Option<i64>,
        at: i64,
    ) -> SourceClaim<'a> {
        SourceClaim {
            claim: Claim {
                zpid: Some("1"),
                uri: None,
                price: Some(price),
                address: None,
                bedrooms: None,
                bathrooms: None,
                living_area: None,
                home_type: None,
                home_status: Some(if price > 150 { "SOLD" } else { "FOR_SALE" }),
                days_on_zillow: None,
                zip_code: None,
                city: None,
                state: None,
                latitude: None,
                longitude: None,
            },
            trust: Some(trust),
            member,
            miner_hotkey: hotkey,
            signature,
            submitted_at: at * 1_000_000,
        }
    }

    fn price_and_voters(claims: &[SourceClaim<'_>]) -> (f64, i32, i32) {
        let mut kept = SourceClaims::default();
        for c in claims {
            kept.add(c);
        }
        let mut votes = kept.votes(0.0).unwrap();
        let result = votes.listing.result().unwrap().unwrap();
        let price = result.price.unwrap();
        (price.value, price.voters, votes.voting_sources)
    }

    #[test]
    fn a_group_votes_once_with_its_heaviest_members_claim() {
        // Three members of group g say 200; one independent miner says 100 with more trust than
        // any one of them: the group's one vote (its heaviest member, trust 0.4) loses.
        let claims = [
            claim("g", "a", 200, 0.3, None, 1),
            claim("g", "b", 200, 0.4, None, 2),
            claim("g", "c", 200, 0.2, None, 3),
            claim("x", "x", 100, 0.5, None, 1),
        ];
        assert_eq!(price_and_voters(&claims), (100.0, 2, 2));
    }

    #[test]
    fn copies_vote_for_the_source_of_the_earliest_upload() {
        // y and z upload byte copies (signature 7) of what x uploaded first: one vote, x's.
        let claims = [
            claim("x", "x", 200, 0.2, Some(7), 1),
            claim("y", "y", 200, 0.3, Some(7), 2),
            claim("z", "z", 200, 0.3, Some(7), 3),
            claim("w", "w", 100, 0.25, None, 1),
        ];
        // Source x leads with y's claim (trust 0.3, the heaviest of its copies, then newest: z).
        let (price, voters, sources) = price_and_voters(&claims);
        assert_eq!((price, voters, sources), (200.0, 2, 2));
        // Ties on upload time go to the smallest hotkey as bytes, "B" < "a" (a collation would
        // say "a" < "B"): the copies are B's, so a2's group a is a second source.
        let claims = [
            claim("a", "a", 200, 0.3, Some(7), 1),
            claim("B", "B", 200, 0.3, Some(7), 1),
            claim("a", "a2", 100, 0.3, None, 1),
        ];
        let mut kept = SourceClaims::default();
        claims.iter().for_each(|c| kept.add(c));
        assert_eq!(kept.votes(0.0).unwrap().voting_sources, 2);
    }

    #[test]
    fn an_older_claim_gives_way_by_its_age_and_zero_trust_does_not_vote() {
        let hour = 3600;
        // 200 at trust 0.3, uploaded 4 h (two half-lives) before 100 at trust 0.1:
        // 0.3 / 4 = 0.075 < 0.1.
        let claims = [claim("x", "x", 200, 0.3, None, 0), claim("y", "y", 100, 0.1, None, 4 * hour)];
        let mut kept = SourceClaims::default();
        claims.iter().for_each(|c| kept.add(c));
        let mut votes = kept.votes(2.0 * hour as f64).unwrap();
        assert_eq!(votes.listing.result().unwrap().unwrap().price.unwrap().value, 100.0);
        let claims = [claim("x", "x", 200, 0.0, None, 0), claim("y", "y", 100, 0.1, None, 1)];
        assert_eq!(price_and_voters(&claims).2, 1);
    }

    #[test]
    fn trust_orders_like_postgres() {
        assert_eq!(trust_order(None, Some(f64::NAN)), Ordering::Greater);
        assert_eq!(trust_order(Some(f64::NAN), Some(f64::INFINITY)), Ordering::Greater);
        assert_eq!(trust_order(Some(0.5), Some(0.25)), Ordering::Greater);
        assert_eq!(trust_order(None, None), Ordering::Equal);
    }
}
