-- History: how each listing's consensus price and status changed over time. The one writer of
-- the consensus, resi.refresh_consensus (the fold, refreshes, rebuilds and audits all go
-- through it), records each change set-based in the statement that writes the listings.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Consensus history
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.listing_history (
    id              bigserial PRIMARY KEY,
    zpid            text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(), -- the time of the transaction that changed it
    price           bigint, -- the consensus after the change
    home_status     text,
    consensus_score real,
    previous_price       bigint, -- and before it (NULL: the listing's first consensus)
    previous_home_status text
);
COMMENT ON TABLE resi.listing_history IS 'Every change of a listing''s consensus price or status (the first consensus included), with the values before and after.';
CREATE INDEX listing_history_zpid_idx ON resi.listing_history (zpid, changed_at);
SELECT pg_catalog.pg_extension_config_dump('resi.listing_history', '');
SELECT pg_catalog.pg_extension_config_dump('resi.listing_history_id_seq', '');
