-- Which edition of resi_pg this is (native: Rust, loaded as a library; portable: SQL and
-- PL/pgSQL, sql/portable/edition.sql). Clients such as resi-loader may read it; the SQL API
-- is the same.

CREATE FUNCTION resi.edition() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'native';
COMMENT ON FUNCTION resi.edition() IS
    'Which edition of resi_pg is installed: native (Rust) or portable (SQL and PL/pgSQL, for hosted PostgreSQL). Both offer the same SQL API.';
