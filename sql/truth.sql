-- Truth discovery for any claims: the method behind the listings' consensus, open to any set of
-- (object, property, source, value) claims from SQL (resi_pg/src/truth.rs over
-- resi_core/src/truth.rs, whose module documentation gives the method and its defaults).
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- One group of rows is one problem: each row a claim (source NOT NULL) or an audit (source
-- NULL: the item's true value); source_group names the group of dependent sources a source
-- belongs to (NULL: its own). Expand the result with jsonb_to_recordset(result -> 'values').
-- No COMBINEFUNC: accuracies are learned over all items at once.
COMMENT ON AGGREGATE resi.discover_truth(text, text, text, text, text) IS
    'Truth discovery over claims (object, property, source, value; a NULL source is an audit): each item''s value with confidence, supporters and independent groups, and each source''s accuracy and vote weight, as jsonb. Dependent sources (same source_group) vote once.';
