-- Trust arithmetic: the portable body of resi_pg/src/trust.rs over resi_core/src/trust.rs
-- (resi.initial_trust, resi.earned_trust, resi.claim_recency). The results are bit-for-bit
-- the native ones: the same IEEE operations in the same order (PostgreSQL's float8 operators
-- are IEEE double arithmetic, as Rust's); ln and sqrt are the C library's in both (Rust's
-- f64::ln calls glibc's log, as PostgreSQL's ln does); Rust's 0.5.powf(x) is glibc's
-- exp2(-x), reproduced below (PostgreSQL has no exp2, and its power() is pow, which rounds
-- differently). Where PostgreSQL raises on a float8 overflow or an underflow to zero that
-- Rust just rounds, the operation is arranged not to (resi.float8_mul, the agreement weight,
-- resi.claim_recency_seconds).
--
-- resi.next_trust and resi.submission_trust_quality (the trust of 0.1.0–0.4.0) have no body
-- here: natively they are `sql = false`, kept in the library only for databases not yet
-- upgraded to 0.5.0, and no 0.5.0 install script creates them.
--
-- Doubles in messages are Rust's Display of them, as resi.consensus_float_text
-- (sql/portable/consensus.sql) writes it; only PL/pgSQL bodies here call it (bound when first
-- called, so the two files may be created in either order).

-- a × b as IEEE arithmetic rounds it, where PostgreSQL's float8 * raises on a product of two
-- nonzero numbers that rounds to zero: such a product is ±0 here. For finite a, b whose
-- product does not overflow. IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.float8_mul(a double precision, b double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    scale  CONSTANT double precision := 4.149515568880993e+180; -- 2^600
    limit_ CONSTANT double precision := 4.253529586511731e+37;  -- 2^125 = 2^-1075 × 2^1200
    split  CONSTANT double precision := 134217729;              -- 2^27 + 1
    x double precision;
    y double precision;
    p double precision;
    c double precision;
    xh double precision;
    xl double precision;
    yh double precision;
    yl double precision;
    err double precision;
BEGIN
    IF a = 0 OR b = 0 OR abs(a) >= 1 OR abs(b) >= 1
       OR (abs(a) >= 2.2227587494850775e-162 AND abs(b) >= 2.2227587494850775e-162) THEN -- 2^-537
        RETURN a * b; -- cannot round to zero
    END IF;
    -- The exact product × 2^1200 is x × y (both scalings exact, no overflow or underflow); the
    -- product rounds to zero when that is at most 2^125, i.e. the product at most 2^-1075.
    x := abs(a) * scale;
    y := abs(b) * scale;
    p := x * y;
    IF p = limit_ THEN -- the rounding of x × y hid which side of 2^125 it is on (Dekker)
        c := split * x; xh := c - (c - x); xl := x - xh;
        c := split * y; yh := c - (c - y); yl := y - yh;
        err := ((xh * yh - p) + xh * yl + xl * yh) + xl * yl; -- x × y - p, exactly
        IF err > 0 THEN
            RETURN a * b;
        END IF;
    ELSIF p > limit_ THEN
        RETURN a * b;
    END IF;
    RETURN CASE WHEN (a < 0) <> (b < 0) THEN '-0'::double precision ELSE 0 END;
END
$$;

-- The trust of a Beta(alpha, beta) posterior (resi_core Posterior::trust): the log-odds of
-- mean - 1 sd, clamped to [0, 0.95], over the log-odds of 0.95; 0 at 0.5 and below. For
-- alpha, beta >= 0 with alpha + beta > 0. IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.posterior_trust(alpha double precision, beta double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    one      CONSTANT double precision := 1;
    cap      CONSTANT double precision := 0.95; -- MAX_ACCURACY (float8: 0.95 / (1 - 0.95) is 18.99…98)
    n        double precision := alpha + beta;
    mean     double precision := alpha / (alpha + beta);
    sd       double precision := sqrt(mean * (one - mean) / (n + one));
    accuracy double precision := least(least(greatest(mean - one * sd, 0), one), cap);
BEGIN
    RETURN CASE WHEN accuracy <= 0 THEN 0 ELSE greatest(ln(accuracy / (one - accuracy)), 0) END
           / greatest(ln(cap / (one - cap)), 0);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The SQL API
-- ---------------------------------------------------------------------------------------------
-- The trust of a miner not yet in resi.miner_trust: the resi.initial_trust setting.
-- STABLE, PARALLEL SAFE, never NULL.
CREATE FUNCTION resi.initial_trust() RETURNS double precision
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT resi.setting('resi.initial_trust')::double precision $$;

-- The trust a miner has earned with this evidence (resi_core::trust::Evidence::trust; see
-- the native comment in sql/trust.sql): the prior is 4 pseudo-claims whose trust is
-- initial_trust (found by 60 bisection steps), audits count 1 each, corroborated rows 0.1
-- each and 10 at most. IMMUTABLE, STRICT, PARALLEL SAFE. 22023 for negative claim counts,
-- wrong > audited claims, agreeing rows negative or above corroborated rows (+1e-9),
-- corroborated rows not finite, and an initial trust outside [0, 1] or NaN.
CREATE FUNCTION resi.earned_trust(
    audited_claims    bigint,
    wrong_claims      bigint,
    corroborated_rows double precision,
    agreeing_rows     double precision,
    initial_trust     double precision
) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    one      CONSTANT double precision := 1;
    prior    CONSTANT double precision := 4;   -- PRIOR_CLAIMS
    low      double precision := 0;
    high     double precision := 1;
    mid      double precision;
    rows     double precision := corroborated_rows;
    per_row  double precision;
    agreeing double precision;
    right_   double precision;
    wrong    double precision;
BEGIN
    IF audited_claims < 0 THEN
        RAISE EXCEPTION 'resi.earned_trust: audited_claims must be >= 0, got %', audited_claims
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF wrong_claims < 0 THEN
        RAISE EXCEPTION 'resi.earned_trust: wrong_claims must be >= 0, got %', wrong_claims
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- NaN compares above every number in PostgreSQL and unordered in Rust: test it apart.
    IF wrong_claims > audited_claims OR agreeing_rows = 'NaN' OR corroborated_rows = 'NaN'
       OR NOT (agreeing_rows >= 0 AND agreeing_rows <= corroborated_rows + 1e-9::double precision)
       OR corroborated_rows IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'resi.earned_trust: trust evidence needs wrong_claims <= audited_claims and agreeing_rows <= corroborated_rows, got % wrong of % audited claims and % agreeing of % corroborated rows',
            wrong_claims, audited_claims, resi.consensus_float_text(agreeing_rows), resi.consensus_float_text(corroborated_rows)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF initial_trust = 'NaN' OR NOT (initial_trust >= 0 AND initial_trust <= 1) THEN
        RAISE EXCEPTION 'resi.earned_trust: the initial trust must be between 0 and 1, got %', resi.consensus_float_text(initial_trust)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The prior's mean, by bisection: trust grows with it.
    FOR i IN 1..60 LOOP
        mid := 0.5::double precision * (low + high);
        IF resi.posterior_trust(prior * mid, prior * (one - mid)) < initial_trust THEN
            low := mid;
        ELSE
            high := mid;
        END IF;
    END LOOP;
    -- Agreement: 0.1 of an audit per row, 10 audits at most (min(0.1, 10 / rows), which is 0.1
    -- below 100 rows: written so that 10 / rows cannot overflow).
    per_row := CASE WHEN rows > 0 THEN CASE WHEN rows < 100 THEN 0.1::double precision
                                            ELSE least(0.1::double precision, 10::double precision / rows) END
                    ELSE 0 END;
    agreeing := least(agreeing_rows, rows);
    right_ := (audited_claims - wrong_claims)::double precision + resi.float8_mul(per_row, agreeing);
    wrong := wrong_claims::double precision + resi.float8_mul(per_row, rows - agreeing);
    RETURN resi.posterior_trust(prior * high + right_, prior * (one - high) + wrong);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- exp2, as glibc computes it
-- ---------------------------------------------------------------------------------------------
-- Rust's 0.5f64.powf(x) is compiled to exp2(-x) (LLVM rewrites pow of a power of two), and
-- glibc's exp2 and pow round differently about once in a thousand: PostgreSQL's power() is
-- pow. These reproduce glibc's exp2 (sysdeps/ieee754/dbl-64/e_exp2.c, glibc 2.28 and later,
-- without FMA: 2^(k/128) from a table times a degree-5 polynomial of the rest), for the
-- exponents claim recency takes; equal to the C library's on 300,000 points of [-3, 0].

-- The table of 2^(k/128), k = 0..127, as glibc keeps it: H[k] (a double) and the relative
-- error T[k] of H[k] (glibc's __exp_data.tab). IMMUTABLE, PARALLEL SAFE (inlined to constants).
CREATE FUNCTION resi.glibc_exp2_scale() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{
        1.0,1.0054299011128027,1.0108892860517005,1.016378314910953,1.0218971486541166,
        1.0274459491187637,1.0330248790212284,1.0386341019613787,1.0442737824274138,
        1.0499440858006872,1.0556451783605572,1.061377227289262,1.0671404006768237,
        1.0729348675259756,1.0787607977571199,1.0846183622133092,1.0905077326652577,
        1.0964290818163769,1.102382583307841,1.1083684117236787,1.1143867425958924,
        1.1204377524096067,1.1265216186082418,1.1326385195987192,1.1387886347566916,
        1.1449721444318042,1.1511892299529827,1.1574400736337511,1.1637248587775775,
        1.1700437696832502,1.1763969916502812,1.182784710984341,1.189207115002721,
        1.1956643920398273,1.202156731452703,1.2086843236265816,1.215247359980469,
        1.2218460329727576,1.22848053610687,1.2351510639369334,1.241857812073484,1.2486009771892048,
        1.255380757024691,1.2621973503942507,1.2690509571917332,1.275941778396392,
        1.2828700160787783,1.2898358734066657,1.2968395546510096,1.3038812651919358,
        1.3109612115247644,1.318079601266064,1.3252366431597413,1.3324325470831615,
        1.339667524053303,1.3469417862329458,1.3542555469368927,1.3616090206382248,
        1.3690024229745905,1.3764359707545302,1.383909881963832,1.3914243757719262,
        1.3989796725383112,1.4065759938190154,1.4142135623730951,1.4218926021691656,
        1.42961333839197,1.4373759974489824,1.4451808069770467,1.4530279958490526,1.460917794180647,
        1.4688504333369818,1.4768261459394993,1.4848451658727524,1.4929077282912648,
        1.5010140696264256,1.5091644275934228,1.5173590411982147,1.5255981507445384,
        1.533881997840956,1.5422108254079407,1.550584877685,1.559004400237837,1.567469639965553,
        1.5759808451078865,1.5845382652524937,1.593142151342267,1.6017927556826934,
        1.6104903319492543,1.6192351351948637,1.6280274218573478,1.6368674497669644,
        1.645755478153965,1.6546917676561943,1.6636765803267364,1.6727101796415966,
        1.681792830507429,1.6909247992693053,1.7001063537185235,1.709337763100463,1.718619298122478,
        1.7279512309618377,1.7373338352737062,1.746767386199169,1.7562521603732995,
        1.7657884359332727,1.7753764925265212,1.785016611318935,1.7947090750031072,
        1.804454167806624,1.8142521755003989,1.8241033854070534,1.8340080864093424,
        1.843966568958626,1.8539791250833855,1.864046048397789,1.8741676341103,1.8843441790323345,
        1.8945759815869656,1.9048633418176741,1.9152065613971474,1.925605943636125,
        1.9360617934922943,1.9465744175792332,1.9571441241754002,1.9677712232331759,
        1.978456026387951,1.9891988469672663
}'::double precision[] $$;

CREATE FUNCTION resi.glibc_exp2_tail() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{
        0.0,9.447885451727066e-17,-1.507066976926039e-17,-5.679155082825012e-17,
        4.9997448722726326e-17,-4.823683599994895e-17,7.357846871247418e-18,5.773230223741951e-17,
        8.189317638195515e-17,5.326891139980878e-17,1.6665881442326747e-18,-1.128113245461828e-17,
        -7.402825309426177e-17,-3.578659767309563e-18,-6.170654745608695e-17,2.919139999949279e-17,
        -2.7939114859515733e-17,-5.399285355184285e-17,4.776959425256223e-17,-7.927701432338473e-17,
        9.341710609905046e-17,-5.534520675707472e-17,4.585670326662351e-17,2.8582430411116143e-17,
        7.826573258636076e-17,4.053626906769216e-17,2.823784425951061e-17,-7.882802262487991e-17,
        3.2904726646008416e-17,-1.5792094703347882e-18,4.721368121170128e-17,1.3045277096919659e-17,
        3.3484623336251524e-17,3.8611199774925664e-17,5.527550048505249e-17,-3.927184172445234e-17,
        -6.346552106729483e-17,-8.684417614865944e-17,-1.5456342819397733e-17,-8.70763476495455e-17,
        3.750854201303127e-17,-6.616854503526488e-17,-5.346099009198751e-18,-2.443726321015018e-17,
        2.1023049675215714e-18,7.771067937501065e-17,1.3357510088834541e-17,6.938291696959204e-17,
        1.9572585293112036e-17,6.632256961675804e-17,-5.478069123926778e-17,-4.140839310392624e-17,
        -2.1571477251208752e-17,-3.8287766552120535e-17,6.663804589232195e-17,
        2.3936187400285282e-17,5.68648095791174e-17,1.1264523354521684e-18,7.007875046906994e-17,
        -5.0119214278381254e-17,-4.8923067513522756e-17,-3.5260089953269434e-17,
        -6.872303720902018e-17,5.001446664133532e-18,-6.835808657661922e-17,-1.1307344092910212e-17,
        -8.416011634717156e-18,-2.9247977035436566e-17,-2.092304381843353e-17,
        -3.9778645875427124e-17,-3.833464968654295e-17,5.763611164480894e-17,
        -2.3591094770850053e-17,7.260074661098575e-17,9.50689710108796e-18,-4.272956133839906e-17,
        -6.735219232374683e-17,-2.8396044410430936e-17,-7.226635472101257e-17,5.786121003395918e-17,
        5.1548301170786783e-17,-9.416257568878152e-18,2.4253985766689806e-17,-6.604314051707707e-17,
        -6.432131775424189e-18,-1.2204007601863921e-17,-6.336161863401293e-17,
        -3.7800879246373815e-17,1.5341410053603723e-17,1.2932855580427452e-17,
        -4.123367330661149e-17,4.703083974463456e-17,-6.152602891550265e-17,5.827849326195279e-17,
        3.540948262646183e-17,-3.2741571320938764e-17,4.875160526227062e-17,-5.718569790077838e-17,
        -4.719539664590972e-18,-5.773451958805706e-17,-1.0772487078934056e-17,
        -6.221808618533911e-17,1.821405440362259e-17,-6.155536546227639e-17,1.685487290628973e-17,
        5.3581249177694816e-17,3.621615935336894e-17,8.588379527574144e-18,1.01562190116415e-17,
        -2.869134889187244e-17,-5.495118966122005e-17,-5.56965572431627e-17,1.790126907604513e-17,
        -3.2211766346200164e-17,5.265370768556274e-17,3.5089866402403033e-17,-3.266924100901318e-17,
        -4.3657593008079375e-17,1.7963932659833022e-17,3.4300925275214166e-17,
        -5.545065618639427e-17,-5.149009745457733e-17,5.336805878514151e-17,3.498978661192973e-17,
        4.5784915277060095e-17,-5.241934575393899e-17,2.0414278897578303e-17,4.124842848606488e-18
}'::double precision[] $$;

-- 2^x for x in [-3, 0], bit for bit glibc's exp2(x); 22023 outside. IMMUTABLE, STRICT,
-- PARALLEL SAFE.
CREATE FUNCTION resi.glibc_exp2(x double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    shift CONSTANT double precision := 52776558133248; -- 0x1.8p52 / 128: rounds to a multiple of 1/128
    c1    CONSTANT double precision := 0.6931471805599453;
    c2    CONSTANT double precision := 0.24022650695909065;
    c3    CONSTANT double precision := 0.0555041086686087;
    c4    CONSTANT double precision := 0.009618131975721055;
    c5    CONSTANT double precision := 0.0013332074570119598;
    kd    double precision;
    k     integer;
    j     integer;
    r     double precision;
    r2    double precision;
    tmp   double precision;
    scale double precision;
BEGIN
    IF NOT (x >= -3 AND x <= 0) THEN
        RAISE EXCEPTION 'resi.glibc_exp2: % is outside [-3, 0]', x USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF x > -5.551115123125783e-17::double precision THEN -- |x| < 2^-54
        RETURN 1 + x;
    END IF;
    kd := (x + shift) - shift; -- k/128
    k := (kd * 128)::integer;  -- exact
    j := k & 127;              -- k mod 128
    r := x - kd;               -- in [-1/256, 1/256]
    r2 := r * r;
    tmp := (resi.glibc_exp2_tail())[j + 1] + r * c1 + r2 * (c2 + r * c3) + r2 * r2 * (c4 + r * c5);
    scale := (resi.glibc_exp2_scale())[j + 1] * ('{0.125, 0.25, 0.5, 1}'::double precision[])[4 + (k - j) / 128];
    RETURN scale + scale * tmp;
END
$$;

-- resi_core::trust::claim_recency: the share of its weight a claim keeps when its upload is
-- age_seconds older than the listing's newest claim, 0.5 ^ min(age / half_life, 3); 1 when
-- !(age > 0 and half_life > 0) (NaN included). For the portable consensus, which reads the
-- half-life once per listing (resi.claim_half_life_seconds()) as the native one does.
-- IMMUTABLE, STRICT, PARALLEL SAFE; never raises (where PostgreSQL's division would overflow
-- or underflow to zero, the ratio is far above 3 or below 1e-20, whose results are exact).
CREATE FUNCTION resi.claim_recency_seconds(age_seconds double precision, half_life_seconds double precision)
    RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    three CONSTANT double precision := 3; -- RECENCY_HALVINGS
BEGIN
    IF age_seconds = 'NaN' OR half_life_seconds = 'NaN' OR NOT (age_seconds > 0 AND half_life_seconds > 0) THEN
        RETURN 1;
    ELSIF half_life_seconds = 'Infinity' THEN -- age / ∞ is 0, ∞ / ∞ is NaN and min(NaN, 3) is 3
        RETURN CASE WHEN age_seconds = 'Infinity' THEN 0.125 ELSE 1 END;
    ELSIF age_seconds = 'Infinity'
          OR (half_life_seconds < 1 AND age_seconds > 12::double precision * half_life_seconds) THEN
        RETURN 0.125; -- 0.5 ^ 3
    ELSIF age_seconds < 1 AND half_life_seconds > 1 AND age_seconds < half_life_seconds * 1e-20::double precision THEN
        RETURN 1; -- 0.5 ^ (below 1e-20) rounds to 1
    END IF;
    RETURN resi.glibc_exp2(-least(age_seconds / half_life_seconds, three)); -- Rust: 0.5f64.powf(…)
END
$$;

-- The share of its weight a claim keeps when its upload is `age` older than the listing's
-- newest claim: 0.5 ^ (age / resi.claim_half_life), at least 1/8; 1 when age <= 0 or the
-- setting is 0. The age in seconds counts a month as 30 days and a day as 24 hours, as
-- pgrx's Interval::as_micros. STABLE (reads the setting, only for a positive age), STRICT,
-- PARALLEL SAFE; raises only for a SET resi.claim_half_life the session may not make or
-- that is malformed (settings.sql).
CREATE FUNCTION resi.claim_recency(age interval) RETURNS double precision
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    IF age <= interval '0' THEN -- interval comparison counts months and days the same way
        RETURN 1;
    END IF;
    RETURN resi.claim_recency_seconds(
        ((extract(year FROM age) * 12 + extract(month FROM age)) * 2592000000000
         + extract(day FROM age) * 86400000000
         + extract(hour FROM age) * 3600000000 + extract(minute FROM age) * 60000000
         + extract(microseconds FROM age))::double precision / 1e6::double precision,
        resi.claim_half_life_seconds());
END
$$;
