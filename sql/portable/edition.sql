-- Which edition of resi_pg this is: the portable body of sql/native/edition.sql (the comment on
-- the function is the same text in both).

CREATE FUNCTION resi.edition() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'portable';
COMMENT ON FUNCTION resi.edition() IS
    'Which edition of resi_pg is installed: native (Rust) or portable (SQL and PL/pgSQL, for hosted PostgreSQL). Both offer the same SQL API.';
