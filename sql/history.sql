-- History: how each listing's consensus price and status changed over time, kept by a trigger
-- on resi.listings (so every writer of the consensus keeps it: the fold, refreshes, rebuilds).
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

CREATE FUNCTION resi.record_listing_history() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO resi.listing_history (zpid, price, home_status, consensus_score, previous_price, previous_home_status)
    VALUES (NEW.zpid, NEW.price, NEW.home_status, NEW.consensus_score, OLD.price, OLD.home_status);
    RETURN NULL;
END
$$;

-- Only rows whose price or status really changed fire it (the WHEN clause is checked per row
-- before any call), so refreshes that move confidences alone cost nothing here.
CREATE TRIGGER record_listing_history
    AFTER UPDATE OF price, home_status ON resi.listings
    FOR EACH ROW
    WHEN (OLD.price IS DISTINCT FROM NEW.price OR OLD.home_status IS DISTINCT FROM NEW.home_status)
    EXECUTE FUNCTION resi.record_listing_history();

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.record_listing_history() IS
    'Row trigger of resi.listings: records a change of consensus price or status in resi.listing_history.';
