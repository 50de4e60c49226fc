-- The S3 key layout of miners' uploads: the portable body of resi_pg/src/keys.rs over
-- resi_core/src/keys.rs.
--
--   …/hotkey={hotkey}/job_id={job_id}/data_{YYYYMMDD_HHMMSS}_{rows}.parquet     (kind parquet)
--   …/hotkey={hotkey}/…/epoch={epoch}/zipcode={zip}/data_{YYYYMMDD_HHMMSS}.json  (kind epoch_json)
--
-- Any prefix may come before the last hotkey= folder. A folder's value is non-empty and has
-- no control character (Unicode Cc). The timestamp and epoch are real calendar dates and
-- times (Gregorian, year 1..9999).

-- The timestamp of 14 digits YYYYMMDDHHMMSS, NULL unless they are 14 ASCII digits naming a
-- real date and time. IMMUTABLE, STRICT, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.upload_timestamp(digits text) RETURNS timestamp
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    y     integer;
    mo    integer;
    dd    integer;
BEGIN
    IF digits !~ '^[0-9]{14}$' THEN
        RETURN NULL;
    END IF;
    y := substr(digits, 1, 4)::integer;
    mo := substr(digits, 5, 2)::integer;
    dd := substr(digits, 7, 2)::integer;
    IF y < 1 OR mo NOT BETWEEN 1 AND 12 OR dd < 1
       OR dd > (CASE WHEN mo = 2 THEN (CASE WHEN y % 4 = 0 AND (y % 100 <> 0 OR y % 400 = 0) THEN 29 ELSE 28 END)
                     WHEN mo IN (4, 6, 9, 11) THEN 30 ELSE 31 END)
       OR substr(digits, 9, 2)::integer > 23 OR substr(digits, 11, 2)::integer > 59
       OR substr(digits, 13, 2)::integer > 59 THEN
        RETURN NULL;
    END IF;
    RETURN make_timestamp(y, mo, dd, substr(digits, 9, 2)::integer, substr(digits, 11, 2)::integer,
                          substr(digits, 13, 2)::double precision);
END
$$;

-- The parts of an upload's key, or NULL for a key that does not follow the layout (including
-- impossible dates and row counts beyond integer). IMMUTABLE, STRICT, PARALLEL SAFE; never
-- raises. (resi_core 0.5.0 panics, XX000, on a file name of 15 bytes whose digit groups split
-- a multi-byte character, e.g. data_202é101_000000_1.parquet; this gives NULL, as documented.)
CREATE FUNCTION resi.parse_s3_key(key text) RETURNS resi.s3_key
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    control  CONSTANT text := E'[\u0001-\u001F\u007F-\u009F]';
    segments text[] := string_to_array(key, '/');
    at       integer;
    rest     text[];
    file     text;
    stamp    text;
    rows     text;
    result   resi.s3_key;
BEGIN
    IF key = '' THEN
        RETURN NULL;
    END IF;
    -- The last hotkey= folder; anything before it is the bucket's prefix.
    SELECT max(i) INTO at FROM unnest(segments) WITH ORDINALITY AS s(segment, i) WHERE left(segment, 7) = 'hotkey=';
    IF at IS NULL THEN
        RETURN NULL;
    END IF;
    result.miner_hotkey := substr(segments[at], 8);
    IF result.miner_hotkey = '' OR result.miner_hotkey ~ control THEN
        RETURN NULL;
    END IF;
    rest := segments[at + 1:];
    file := rest[cardinality(rest)];
    IF cardinality(rest) = 2 THEN
        result.kind := 'parquet';
        result.job_id := substr(rest[1], 8);
        IF left(rest[1], 7) <> 'job_id=' OR result.job_id = '' OR result.job_id ~ control
           OR left(file, 5) <> 'data_' OR right(file, 8) <> '.parquet' OR length(file) < 13 THEN
            RETURN NULL;
        END IF;
        stamp := substr(file, 6, length(file) - 13); -- {stamp}_{rows}, split at the last '_'
        rows := substring(stamp FROM '[^_]*$');
        IF strpos(stamp, '_') = 0 OR rows !~ '^[0-9]{1,19}$' OR rows::numeric > 2147483647 THEN
            RETURN NULL;
        END IF;
        result.declared_rows := rows::integer;
        stamp := left(stamp, length(stamp) - length(rows) - 1);
        IF stamp !~ '^[0-9]{8}_[0-9]{6}$' THEN
            RETURN NULL;
        END IF;
        result.file_timestamp := resi.upload_timestamp(replace(stamp, '_', ''));
    ELSIF cardinality(rest) >= 3 THEN
        result.kind := 'epoch_json';
        result.epoch := substr(rest[cardinality(rest) - 2], 7);
        result.zipcode := substr(rest[cardinality(rest) - 1], 9);
        IF left(rest[cardinality(rest) - 2], 6) <> 'epoch='
           OR result.epoch !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}$'
           OR resi.upload_timestamp(translate(result.epoch, '-T', '')) IS NULL
           OR left(rest[cardinality(rest) - 1], 8) <> 'zipcode=' OR result.zipcode = '' OR result.zipcode ~ control
           OR left(file, 5) <> 'data_' OR right(file, 5) <> '.json' OR length(file) < 10 THEN
            RETURN NULL;
        END IF;
        -- The first job_id= folder between, if its value is valid.
        SELECT substr(s.segment, 8) INTO result.job_id
          FROM unnest(rest[1:cardinality(rest) - 3]) WITH ORDINALITY AS s(segment, i)
         WHERE left(s.segment, 7) = 'job_id='
         ORDER BY s.i LIMIT 1;
        IF result.job_id = '' OR result.job_id ~ control THEN
            result.job_id := NULL;
        END IF;
        stamp := substr(file, 6, length(file) - 10);
        IF stamp !~ '^[0-9]{8}_[0-9]{6}$' THEN
            RETURN NULL;
        END IF;
        result.file_timestamp := resi.upload_timestamp(replace(stamp, '_', ''));
    ELSE
        RETURN NULL;
    END IF;
    IF result.file_timestamp IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN result;
END
$$;
