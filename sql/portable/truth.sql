-- Truth discovery for any claims, portable edition: the aggregate resi.discover_truth in SQL and
-- PL/pgSQL, the portable body of resi_pg/src/truth.rs over resi_core/src/truth.rs (whose module
-- documentation gives the method: an Accu-style fixed point with Beta posteriors, Wilson lower
-- bound vote weights and one vote per group of dependent sources). What it promises is in
-- sql/truth.sql, shared by both editions.
--
-- Same jsonb as the native edition: the same canonical order (strings compared as bytes), every
-- sum over the same terms in the same order, so accuracies, weights and confidences are
-- bit-identical; numbers written as serde_json writes them. The method runs set-based, one
-- statement per round. The state is text, one line per row, copied on every row, so the
-- aggregate is quadratic in the rows of a group: 0.2 s for 1,000 claims, 1.2 s for 10,000, 12 s
-- for 50,000 (native: 0.3 s); fine for analysis, not for millions of claims. No SQL or PL/pgSQL
-- transition function can grow a state in place (see sql/portable/tiles.sql); a text[] state
-- grown with array_append is slower still (its transitions alone: 2 s for 10,000 rows, 8 s for
-- 20,000). Run with check_function_bodies = off, before the shared files.

-- Transition of resi.discover_truth: one line per row, `\n` then object, property, source,
-- value, source_group separated by tabs; in each field a backslash, tab and newline are written
-- \1, \2, \3, and NULL is \0. A row without object, property or value is skipped (the state is
-- still made: no rows gives NULL, only skipped rows an empty discovery). IMMUTABLE, PARALLEL
-- SAFE, not strict.
CREATE FUNCTION resi.discover_truth_transition(
    state text, object text, property text, source text, value text, source_group text)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF object IS NULL OR property IS NULL OR value IS NULL THEN
        RETURN coalesce(state, '');
    END IF;
    -- One concatenation with the state (each || copies its left side).
    RETURN coalesce(state, '') || (
        E'\n' || replace(replace(replace(object, E'\\', E'\\1'), E'\t', E'\\2'), E'\n', E'\\3')
        || E'\t' || replace(replace(replace(property, E'\\', E'\\1'), E'\t', E'\\2'), E'\n', E'\\3')
        || E'\t' || coalesce(replace(replace(replace(source, E'\\', E'\\1'), E'\t', E'\\2'), E'\n', E'\\3'), E'\\0')
        || E'\t' || replace(replace(replace(value, E'\\', E'\\1'), E'\t', E'\\2'), E'\n', E'\\3')
        || E'\t' || coalesce(replace(replace(replace(source_group, E'\\', E'\\1'), E'\t', E'\\2'), E'\n', E'\\3'), E'\\0'));
END
$$;

-- Final of resi.discover_truth: the method with its defaults (n = 3 false values, prior
-- Beta(1, 3), z = 1.28, agreement and audit weight 1, initial accuracy 0.8, at most 20 rounds,
-- tolerance 1e-6). {"values": [{object, property, value, confidence, supporters, groups,
-- audited}] by (object, property), "sources": [{source, group, claims, accuracy, lower_bound,
-- weight, group_weight}] by source, "iterations", "converged"}; NULL for no rows. A source
-- claiming two values for one item, or two audited values for one item, raise 22023 (strings
-- quoted as Rust's {:?} quotes them, but for non-printable characters beyond ASCII and C1
-- controls, which Rust escapes and this leaves as they are). IMMUTABLE, PARALLEL SAFE.
-- extra_float_digits: float8out writes the shortest exact digits, as serde_json does.
CREATE FUNCTION resi.discover_truth_final(state text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET extra_float_digits = 1
AS $$
DECLARE
    -- The rows, in input order.
    r_object   text[];
    r_property text[];
    r_source   text[];
    r_value    text[];
    r_group    text[];
    -- Sources by name (bytes), their group, claims and group names; groups are numbered by
    -- their first member.
    s_name     text[];
    s_group    integer[];
    s_claims   integer[];
    g_name     text[];
    n_sources  integer;
    n_groups   integer;
    -- Items by (object, property): values claimed (1..k, sorted), the audit, the audited value's
    -- number among them (0: not claimed); values of item i are v_text[i_base[i] + 1 .. + k].
    i_object   text[];
    i_property text[];
    i_k        integer[];
    i_audited  boolean[];
    i_audit    text[];
    i_at       integer[];
    i_base     integer[];
    v_text     text[];
    n_items    integer;
    -- Claims by (item, source): source, value (1..k of the item) and the source's group.
    c_item     integer[];
    c_source   integer[];
    c_value    integer[];
    c_group    integer[];
    -- Estimates (accuracy, lower bound, weight) of sources and groups, and one round's result.
    s_acc      double precision[];
    s_lb       double precision[];
    s_w        double precision[];
    g_acc      double precision[];
    g_lb       double precision[];
    g_w        double precision[];
    n_s_acc    double precision[];
    n_s_lb     double precision[];
    n_s_w      double precision[];
    n_g_acc    double precision[];
    n_g_lb     double precision[];
    n_g_w      double precision[];
    -- One vote's outcome per item: the value chosen (its number), confidence, supporters and
    -- voting groups.
    o_choice   integer[];
    o_conf     double precision[];
    o_support  integer[];
    o_voters   integer[];
    previous   integer[];
    moved      double precision;
    initial    double precision;
    iterations integer := 0;
    converged  boolean := false;
    reporting  boolean := false;
    bad        record;
    quoted     text[];
BEGIN
    IF state IS NULL THEN
        RETURN NULL;
    END IF;

    -- The rows back from the state.
    SELECT array_agg(d.v ORDER BY d.ord) FILTER (WHERE d.n = 1), array_agg(d.v ORDER BY d.ord) FILTER (WHERE d.n = 2),
           array_agg(d.v ORDER BY d.ord) FILTER (WHERE d.n = 3), array_agg(d.v ORDER BY d.ord) FILTER (WHERE d.n = 4),
           array_agg(d.v ORDER BY d.ord) FILTER (WHERE d.n = 5)
      INTO r_object, r_property, r_source, r_value, r_group
      FROM (SELECT t.ord, x.n,
                   CASE WHEN x.field = E'\\0' THEN NULL
                        ELSE replace(replace(replace(x.field, E'\\2', E'\t'), E'\\3', E'\n'), E'\\1', E'\\') END AS v
              FROM string_to_table(state, E'\n') WITH ORDINALITY AS t(line, ord),
                   unnest(string_to_array(t.line, E'\t')) WITH ORDINALITY AS x(field, n)
             WHERE t.line <> '') d;

    -- Contradictions: the first, in canonical order, of a source with two values for one item,
    -- then of an item with two audited values.
    SELECT ARRAY[x.s, x.o, x.p, x.v, x.next] AS strings INTO bad
      FROM (SELECT u.o, u.p, u.s, u.v,
                   lead(u.v) OVER (PARTITION BY u.o, u.p, u.s ORDER BY u.v COLLATE "C") AS next,
                   row_number() OVER (PARTITION BY u.o, u.p, u.s ORDER BY u.v COLLATE "C") AS n
              FROM (SELECT DISTINCT o, p, s, v
                      FROM unnest(r_object, r_property, r_source, r_value) AS r(o, p, s, v)
                     WHERE s IS NOT NULL) u) x
     WHERE x.n = 1 AND x.next IS NOT NULL
     ORDER BY x.o COLLATE "C", x.p COLLATE "C", x.s COLLATE "C"
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT ARRAY[x.o, x.p, x.v, x.next] AS strings INTO bad
          FROM (SELECT u.o, u.p, u.v,
                       lead(u.v) OVER (PARTITION BY u.o, u.p ORDER BY u.v COLLATE "C") AS next,
                       row_number() OVER (PARTITION BY u.o, u.p ORDER BY u.v COLLATE "C") AS n
                  FROM (SELECT DISTINCT o, p, v
                          FROM unnest(r_object, r_property, r_source, r_value) AS r(o, p, s, v)
                         WHERE s IS NULL) u) x
         WHERE x.n = 1 AND x.next IS NOT NULL
         ORDER BY x.o COLLATE "C", x.p COLLATE "C"
         LIMIT 1;
    END IF;
    IF bad.strings IS NOT NULL THEN
        -- Quoted as Rust's {:?} quotes a str.
        SELECT array_agg(q.quoted ORDER BY w.k) INTO quoted
          FROM unnest(bad.strings) WITH ORDINALITY AS w(t, k)
         CROSS JOIN LATERAL (
               SELECT '"' || coalesce(string_agg(
                          CASE WHEN c.c = E'\\' THEN E'\\\\' WHEN c.c = '"' THEN E'\\"'
                               WHEN c.c = E'\n' THEN E'\\n' WHEN c.c = E'\r' THEN E'\\r' WHEN c.c = E'\t' THEN E'\\t'
                               WHEN ascii(c.c) < 32 OR ascii(c.c) BETWEEN 127 AND 159
                               THEN E'\\u{' || to_hex(ascii(c.c)) || '}'
                               ELSE c.c END, '' ORDER BY c.n), '') || '"' AS quoted
                 FROM regexp_split_to_table(w.t, '') WITH ORDINALITY AS c(c, n)) q;
        IF cardinality(quoted) = 5 THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
                'resi.discover_truth: source %s claims two values for (%s, %s): %s and %s',
                quoted[1], quoted[2], quoted[3], quoted[4], quoted[5]);
        END IF;
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            'resi.discover_truth: (%s, %s) has two audited values: %s and %s', quoted[1], quoted[2], quoted[3], quoted[4]);
    END IF;

    -- Sources by name; a source's group is the one its last row names (NULL: a group of its
    -- own); groups numbered by their first member.
    WITH named AS (
        SELECT DISTINCT ON (r.s) r.s, r.g
          FROM unnest(r_source, r_group) WITH ORDINALITY AS r(s, g, ord)
         WHERE r.s IS NOT NULL AND r.g IS NOT NULL
         ORDER BY r.s, r.ord DESC
    ),
    sources AS (
        SELECT x.s, n.g, x.idx, min(x.idx) OVER (PARTITION BY n.g IS NULL, coalesce(n.g, x.s)) AS leader
          FROM (SELECT u.s, row_number() OVER (ORDER BY u.s COLLATE "C")::integer AS idx
                  FROM (SELECT DISTINCT s FROM unnest(r_source) AS s WHERE s IS NOT NULL) u) x
          LEFT JOIN named n USING (s)
    ),
    grouped AS (
        SELECT s, g, idx, dense_rank() OVER (ORDER BY leader)::integer AS gi FROM sources
    )
    SELECT (SELECT array_agg(s ORDER BY idx) FROM grouped),
           (SELECT array_agg(gi ORDER BY idx) FROM grouped),
           (SELECT array_agg(g ORDER BY gi) FROM (SELECT DISTINCT gi, g FROM grouped) d),
           (SELECT count(*) FROM grouped),
           (SELECT count(DISTINCT gi) FROM grouped)
      INTO s_name, s_group, g_name, n_sources, n_groups;

    -- Items (claimed or audited) by (object, property); each item's claimed values sorted;
    -- claims without repeats, by (item, source).
    WITH rows AS (
        SELECT * FROM unnest(r_object, r_property, r_source, r_value) AS r(o, p, s, v)
    ),
    claims AS MATERIALIZED (
        SELECT DISTINCT o, p, s, v FROM rows WHERE s IS NOT NULL
    ),
    audits AS (
        SELECT DISTINCT o, p, v FROM rows WHERE s IS NULL
    ),
    items AS MATERIALIZED (
        SELECT u.o, u.p, row_number() OVER (ORDER BY u.o COLLATE "C", u.p COLLATE "C")::integer AS item
          FROM (SELECT o, p FROM claims UNION SELECT o, p FROM audits) u
    ),
    vals AS MATERIALIZED (
        SELECT i.item, u.o, u.p, u.v, row_number() OVER (PARTITION BY i.item ORDER BY u.v COLLATE "C")::integer AS val
          FROM (SELECT DISTINCT o, p, v FROM claims) u JOIN items i USING (o, p)
    ),
    numbered AS MATERIALIZED (
        SELECT va.item, src.idx::integer AS src, va.val
          FROM claims c
          JOIN vals va USING (o, p, v)
          JOIN unnest(s_name) WITH ORDINALITY AS src(s, idx) ON src.s = c.s
    ),
    per_item AS MATERIALIZED (
        SELECT i.item, i.o, i.p, a.v AS audit, coalesce(k.k, 0) AS k, coalesce(va.val, 0) AS at,
               (coalesce(sum(k.k) OVER (ORDER BY i.item ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::integer AS base
          FROM items i
          LEFT JOIN audits a USING (o, p)
          LEFT JOIN (SELECT item, count(*)::integer AS k FROM vals GROUP BY item) k USING (item)
          LEFT JOIN vals va ON va.item = i.item AND va.v = a.v
    )
    SELECT (SELECT array_agg(o ORDER BY item) FROM per_item),
           (SELECT array_agg(p ORDER BY item) FROM per_item),
           (SELECT array_agg(k ORDER BY item) FROM per_item),
           (SELECT array_agg(audit IS NOT NULL ORDER BY item) FROM per_item),
           (SELECT array_agg(audit ORDER BY item) FROM per_item),
           (SELECT array_agg(at ORDER BY item) FROM per_item),
           (SELECT array_agg(base ORDER BY item) FROM per_item),
           (SELECT array_agg(v ORDER BY item, val) FROM vals),
           (SELECT count(*) FROM per_item),
           (SELECT array_agg(item ORDER BY item, src) FROM numbered),
           (SELECT array_agg(src ORDER BY item, src) FROM numbered),
           (SELECT array_agg(val ORDER BY item, src) FROM numbered),
           (SELECT array_agg(s_group[src] ORDER BY item, src) FROM numbered),
           (SELECT array_agg(n ORDER BY src) FROM (SELECT src, count(*)::integer AS n FROM numbered GROUP BY src) x)
      INTO i_object, i_property, i_k, i_audited, i_audit, i_at, i_base, v_text, n_items,
           c_item, c_source, c_value, c_group, s_claims;

    -- The first vote: every source and group with accuracy 0.8 (its own lower bound), weight
    -- ln(3 · 0.8 / (1 − 0.8)).
    initial := ln(3.0::double precision * 0.8::double precision / (1.0::double precision - 0.8::double precision));
    s_acc := array_fill(0.8::double precision, ARRAY[n_sources]);
    s_lb := s_acc;
    s_w := array_fill(initial, ARRAY[n_sources]);
    g_acc := array_fill(0.8::double precision, ARRAY[n_groups]);
    g_lb := g_acc;
    g_w := array_fill(initial, ARRAY[n_groups]);

    -- Rounds: vote with the weights, then evidence → estimates, until no item's value changes
    -- and no accuracy moves by 1e-6, or 20 rounds; then one more vote with the final weights,
    -- whose values are reported.
    LOOP
        WITH claims AS (
            SELECT u.item, u.src, u.val, u.grp
              FROM unnest(c_item, c_source, c_value, c_group) AS u(item, src, val, grp)
        ),
        -- Each group votes once per item, for its heaviest member's value (ties: the first
        -- source); groups count in the order of their first source on the item.
        ballots AS (
            SELECT DISTINCT ON (item, grp) item, grp, val, min(src) OVER (PARTITION BY item, grp) AS first
              FROM claims
             ORDER BY item, grp, s_w[src] DESC, src
        ),
        tally AS (
            SELECT item, val, sum(g_w[grp] ORDER BY first) AS score, count(*)::integer AS votes
              FROM ballots GROUP BY item, val
        ),
        scored AS (
            SELECT c.item, c.val, c.claimed, coalesce(t.score, 0::double precision) AS score,
                   coalesce(t.votes, 0) AS votes,
                   max(coalesce(t.score, 0::double precision)) OVER (PARTITION BY c.item) AS top
              FROM (SELECT item, val, count(*)::integer AS claimed FROM claims GROUP BY item, val) c
              LEFT JOIN tally t USING (item, val)
        ),
        -- exp(score − top), 0 where Rust's exp underflows to 0 (PostgreSQL's raises).
        terms AS (
            SELECT item, val, claimed, score, votes, top,
                   CASE WHEN score - top < -745.1332191019411::double precision THEN 0::double precision
                        ELSE exp(score - top) END AS e
              FROM scored
        ),
        -- The posterior's denominator: max(n + 1 − k, 0) · exp(−top), then each value's term in
        -- value order.
        totals AS (
            SELECT item, sum(term ORDER BY pos) AS total
              FROM (SELECT DISTINCT ON (item) item, 0 AS pos,
                           greatest(4.0::double precision - i_k[item], 0::double precision)
                           * CASE WHEN -top < -745.1332191019411::double precision THEN 0::double precision
                                  ELSE exp(-top) END AS term
                      FROM terms
                    UNION ALL
                    SELECT item, val, e FROM terms) t
             GROUP BY item
        ),
        -- e / total, 0 where Rust's quotient underflows to 0 (PostgreSQL's raises): the quotient
        -- scaled by 2^600 is below 2^-475 exactly when the quotient is below 2^-1075.
        posterior AS (
            SELECT t.item, t.val, t.claimed, t.score, t.votes,
                   CASE WHEN t.e = 0 OR t.e * (2::double precision ^ 600) / s.total < 2::double precision ^ -475
                        THEN 0::double precision ELSE t.e / s.total END AS p
              FROM terms t JOIN totals s USING (item)
        ),
        -- The greatest score; ties to more groups, then more sources, then the first value.
        chosen AS (
            SELECT DISTINCT ON (item) item, val, p, claimed, votes
              FROM posterior
             ORDER BY item, score DESC, votes DESC, claimed DESC, val
        ),
        items AS (
            SELECT i.item,
                   CASE WHEN i_audited[i.item] THEN i_at[i.item] ELSE ch.val END AS choice,
                   CASE WHEN i_audited[i.item] THEN 1::double precision ELSE ch.p END AS confidence,
                   CASE WHEN i_audited[i.item] THEN coalesce(a.claimed, 0) ELSE ch.claimed END AS supporters,
                   CASE WHEN i_audited[i.item] THEN coalesce(a.votes, 0) ELSE ch.votes END AS voters
              FROM generate_series(1, n_items) AS i(item)
              LEFT JOIN chosen ch ON ch.item = i.item
              LEFT JOIN posterior a ON a.item = i.item AND a.val = i_at[i.item]
        ),
        -- Evidence of each claim: hard on audited items, soft (the posterior) elsewhere.
        evidence AS (
            SELECT c.item, c.src, c.grp,
                   CASE WHEN NOT i_audited[c.item] THEN p.p
                        WHEN c.val = i_at[c.item] THEN 1::double precision ELSE 0::double precision END AS correct,
                   CASE WHEN NOT i_audited[c.item] THEN 1::double precision - p.p
                        WHEN c.val = i_at[c.item] THEN 0::double precision ELSE 1::double precision END AS wrong
              FROM claims c JOIN posterior p USING (item, val)
        ),
        -- Summed in item order per source; per group, each item's mean over its claiming
        -- members (summed in source order), summed in item order. (Window sums over the whole
        -- partition add its rows in the window's order, as sum(… ORDER BY …) does, with one
        -- sort instead of one per group.)
        pooled AS (
            SELECT item, grp, correct, wrong, members
              FROM (SELECT item, grp, sum(correct) OVER w AS correct, sum(wrong) OVER w AS wrong,
                           (count(*) OVER w)::double precision AS members, row_number() OVER w AS n
                      FROM evidence
                    WINDOW w AS (PARTITION BY item, grp ORDER BY src ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) x
             WHERE n = 1
        ),
        sums AS (
            SELECT kind, idx, correct, wrong
              FROM (SELECT 's' AS kind, src AS idx, sum(correct) OVER w AS correct, sum(wrong) OVER w AS wrong,
                           row_number() OVER w AS n
                      FROM evidence
                    WINDOW w AS (PARTITION BY src ORDER BY item ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) x
             WHERE n = 1
            UNION ALL
            SELECT kind, idx, correct, wrong
              FROM (SELECT 'g' AS kind, grp AS idx,
                           sum(CASE WHEN correct = 0 OR correct * (2::double precision ^ 600) / members < 2::double precision ^ -475
                                    THEN 0::double precision ELSE correct / members END) OVER w AS correct,
                           sum(CASE WHEN wrong = 0 OR wrong * (2::double precision ^ 600) / members < 2::double precision ^ -475
                                    THEN 0::double precision ELSE wrong / members END) OVER w AS wrong,
                           row_number() OVER w AS n
                      FROM pooled
                    WINDOW w AS (PARTITION BY grp ORDER BY item ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) x
             WHERE n = 1
        ),
        -- Accuracy (1 + correct) / (1 + 3 + correct + wrong), its Wilson lower bound with
        -- z = 1.28 clamped to [0, accuracy], weight ln(3 L / (1 − L)) clipped at 0.
        accuracy AS (
            SELECT f.kind, f.idx, a.observations, a.a / a.observations AS accuracy
              FROM sums f
             CROSS JOIN LATERAL (SELECT 1::double precision + f.correct AS a,
                                        1::double precision + f.correct + 3::double precision + f.wrong AS observations) a
        ),
        bound AS (
            SELECT b.kind, b.idx, b.accuracy,
                   CASE WHEN b.l < 0 THEN 0::double precision WHEN b.l > b.accuracy THEN b.accuracy ELSE b.l END AS lb
              FROM (SELECT x.kind, x.idx, x.accuracy,
                           (x.accuracy + z2 / (2::double precision * x.observations)
                            - 1.28::double precision * sqrt(x.accuracy * (1::double precision - x.accuracy) / x.observations
                                                            + z2 / (4::double precision * x.observations * x.observations)))
                           / (1::double precision + z2 / x.observations) AS l
                      FROM accuracy x, (SELECT 1.28::double precision * 1.28::double precision AS z2) z) b
        ),
        estimates AS (
            SELECT kind, idx, accuracy, lb,
                   CASE WHEN lb >= 1 THEN 'Infinity'::double precision
                        WHEN 3::double precision * lb / (1::double precision - lb) > 1
                        THEN ln(3::double precision * lb / (1::double precision - lb))
                        ELSE 0::double precision END AS weight
              FROM bound
        )
        SELECT (SELECT coalesce(array_agg(accuracy ORDER BY idx), '{}') FROM estimates WHERE kind = 's'),
               (SELECT coalesce(array_agg(lb ORDER BY idx), '{}') FROM estimates WHERE kind = 's'),
               (SELECT coalesce(array_agg(weight ORDER BY idx), '{}') FROM estimates WHERE kind = 's'),
               (SELECT coalesce(array_agg(accuracy ORDER BY idx), '{}') FROM estimates WHERE kind = 'g'),
               (SELECT coalesce(array_agg(lb ORDER BY idx), '{}') FROM estimates WHERE kind = 'g'),
               (SELECT coalesce(array_agg(weight ORDER BY idx), '{}') FROM estimates WHERE kind = 'g'),
               (SELECT coalesce(array_agg(x.choice ORDER BY x.item), '{}') FROM items x),
               (SELECT coalesce(array_agg(x.confidence ORDER BY x.item), '{}') FROM items x),
               (SELECT coalesce(array_agg(x.supporters ORDER BY x.item), '{}') FROM items x),
               (SELECT coalesce(array_agg(x.voters ORDER BY x.item), '{}') FROM items x)
          INTO n_s_acc, n_s_lb, n_s_w, n_g_acc, n_g_lb, n_g_w, o_choice, o_conf, o_support, o_voters;

        EXIT WHEN reporting;
        iterations := iterations + 1;
        SELECT coalesce(max(abs(o - n)), 0) INTO moved
          FROM unnest(s_acc || g_acc, n_s_acc || n_g_acc) AS u(o, n);
        converged := previous IS NOT NULL AND previous = o_choice AND moved < 1e-6::double precision;
        previous := o_choice;
        s_acc := n_s_acc;
        s_lb := n_s_lb;
        s_w := n_s_w;
        g_acc := n_g_acc;
        g_lb := n_g_lb;
        g_w := n_g_w;
        reporting := converged OR iterations >= 20;
    END LOOP;

    -- Numbers as serde_json writes a double (shortest digits; an integral value below 1e16 with
    -- ".0"), read into jsonb's numeric as the native edition's jsonb_in reads them.
    RETURN jsonb_build_object(
        'values', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'object', i_object[i], 'property', i_property[i],
                       'value', CASE WHEN i_audited[i] THEN i_audit[i] ELSE v_text[i_base[i] + o_choice[i]] END,
                       'confidence', n.confidence, 'supporters', o_support[i], 'groups', o_voters[i],
                       'audited', i_audited[i]) ORDER BY i)
              FROM generate_series(1, n_items) AS i
             CROSS JOIN LATERAL (
                   SELECT CASE WHEN NOT abs(x) < 'Infinity'::double precision THEN 'null'::jsonb
                               WHEN x = trunc(x) AND abs(x) < 1e16::double precision THEN to_jsonb(round(x::text::numeric, 1))
                               ELSE to_jsonb(x::text::numeric) END AS confidence
                     FROM (SELECT o_conf[i] AS x) x) n), '[]'::jsonb),
        'sources', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'source', s_name[s], 'group', g_name[s_group[s]], 'claims', s_claims[s],
                       'accuracy', f[1], 'lower_bound', f[2], 'weight', f[3], 'group_weight', f[4]) ORDER BY s)
              FROM generate_series(1, n_sources) AS s
             CROSS JOIN LATERAL (
                   SELECT array_agg(CASE WHEN NOT abs(x) < 'Infinity'::double precision THEN 'null'::jsonb
                                         WHEN x = trunc(x) AND abs(x) < 1e16::double precision
                                         THEN to_jsonb(round(x::text::numeric, 1))
                                         ELSE to_jsonb(x::text::numeric) END ORDER BY k) AS f
                     FROM unnest(ARRAY[s_acc[s], s_lb[s], s_w[s], g_w[s_group[s]]]) WITH ORDINALITY AS u(x, k)) n), '[]'::jsonb),
        'iterations', iterations,
        'converged', converged);
END
$$;

CREATE AGGREGATE resi.discover_truth(object text, property text, source text, value text, source_group text) (
    STYPE     = text,
    SFUNC     = resi.discover_truth_transition,
    FINALFUNC = resi.discover_truth_final,
    PARALLEL  = SAFE
);
