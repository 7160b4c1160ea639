--
-- 20_throttle: per-API rate limits (SPEC §8).  Over its limit a call fails
-- at once with SQLSTATE RL429, naming the API and the limit, with a hint
-- saying when to retry; within the limit calls pass; limits set, changed
-- and removed at runtime take effect at once.
--
-- Determinism: a limit starts with a full bucket of "burst" tokens, and the
-- tests use rates so low (0.001 calls/s: a token every 1000 s) that no
-- token is added while they run, or a tight loop that runs in far less
-- than the time a token takes.  The hint's time is checked as a range.
--
SET search_path = public, campaign;
\pset null '(null)'

SELECT register_schema($$
<srcSchema name="limited" namespace="thr">
  <element name="limited" autoStg="true">
    <attribute name="code" type="string" length="20"/>
  </element>
</srcSchema>$$);

-- calls(api, n): make n calls of the API in a tight loop; returns how many
-- were accepted and rejected (RL429), and whether the staged rows are
-- exactly the accepted ones.
CREATE FUNCTION public.calls(api text, n integer)
RETURNS TABLE (accepted integer, rejected integer, staged_as_accepted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    before bigint := (SELECT count(*) FROM thr.limitedstg);
BEGIN
    accepted := 0;
    rejected := 0;
    FOR i IN 1..n LOOP
        BEGIN
            IF api = 'xtk_ingest' THEN
                PERFORM campaign.xtk_ingest('<limitedStg code="c' || i || '" xtkschema="thr:limitedStg"/>');
            ELSIF api = 'xtk_ingest_ext' THEN
                PERFORM campaign.xtk_ingest_ext('<limitedStg _key="@code" code="c' || i || '" xtkschema="thr:limitedStg"/>');
            ELSE
                PERFORM campaign.check_rate_limit(api);
            END IF;
            accepted := accepted + 1;
        EXCEPTION WHEN SQLSTATE 'RL429' THEN
            rejected := rejected + 1;
        END;
    END LOOP;
    staged_as_accepted := api NOT IN ('xtk_ingest', 'xtk_ingest_ext')
        OR (SELECT count(*) FROM thr.limitedstg) - before = accepted;
    RETURN NEXT;
END
$$;

-- The error of a call over the limit, with the seconds of the hint
-- replaced by whether they are in [low, high].
CREATE FUNCTION public.over_limit(cmd text, low float8, high float8)
RETURNS SETOF text LANGUAGE sql AS $$
    SELECT CASE WHEN e ~ '^HINT: Retry in [0-9.]+ seconds\.$'
                THEN 'HINT: Retry in N seconds. (N in range: '
                     || (substring(e from '[0-9.]+')::float8 BETWEEN low AND high) || ')'
                ELSE e END
      FROM public.expect_error(cmd) e
     WHERE e NOT LIKE 'CONTEXT: SQL function "over_limit"%'
$$;

-- Every API is listed; only failed Logons are limited by default (1 a
-- second, bursts of 10).
SELECT api, per_second, burst, tokens, accepted, rejected,
       limited_since IS NOT NULL AS limited FROM rate_limits;

--
-- Bad calls of set_rate_limit.
--
SELECT * FROM expect_error($$SELECT set_rate_limit('no_such_api', 10)$$);
SELECT * FROM expect_error($$SELECT set_rate_limit(NULL, 10)$$);
SELECT * FROM expect_error($$SELECT set_rate_limit('xtk_ingest', 0)$$);
SELECT * FROM expect_error($$SELECT set_rate_limit('xtk_ingest', -5)$$);
SELECT * FROM expect_error($$SELECT set_rate_limit('xtk_ingest', 'NaN')$$);
SELECT * FROM expect_error($$SELECT set_rate_limit('xtk_ingest', 'Infinity')$$);
SELECT * FROM expect_error($$SELECT set_rate_limit('xtk_ingest', 10, 0)$$);
SELECT * FROM expect_error($$SELECT check_rate_limit('no_such_api')$$, false);
-- Nothing was limited by them.
SELECT count(*) AS limited FROM rate_limits WHERE per_second IS NOT NULL AND api <> 'logon_failure';

--
-- Burst 3 at 0.001 calls/s: three calls pass, the fourth fails at once
-- with RL429, and stages nothing.
--
SELECT set_rate_limit('xtk_ingest', 0.001, 3);
SELECT api, per_second, burst, round(tokens::numeric, 2) AS tokens, accepted, rejected,
       limited_since <= clock_timestamp() AS since_ok
  FROM rate_limits WHERE api = 'xtk_ingest';
SELECT * FROM calls('xtk_ingest', 3);
SELECT * FROM over_limit($$SELECT xtk_ingest('<limitedStg code="over" xtkschema="thr:limitedStg"/>')$$, 990, 1000);
-- the xml variant is the same API
SELECT * FROM expect_error($$SELECT xtk_ingest('<limitedStg code="over" xtkschema="thr:limitedStg"/>'::xml)$$, false);
SELECT api, round(tokens::numeric, 2) AS tokens, accepted, rejected
  FROM rate_limits WHERE api = 'xtk_ingest';
-- Another API is not affected.
SELECT * FROM calls('xtk_ingest_ext', 5);

--
-- A changed limit takes effect at once, with a full bucket: burst 5.
--
SELECT set_rate_limit('xtk_ingest', 0.001, 5);
SELECT * FROM calls('xtk_ingest', 7);
SELECT api, per_second, burst, accepted, rejected FROM rate_limits WHERE api = 'xtk_ingest';

-- The default burst is one second's worth of calls (at least one).
SELECT set_rate_limit('xtk_ingest', 4.5);
SELECT * FROM calls('xtk_ingest', 8);
SELECT set_rate_limit('xtk_ingest', 0.001);
SELECT * FROM calls('xtk_ingest', 3);

--
-- Refill: 2 calls/s, burst 1.  In a tight loop one call passes; after
-- 0.6 s a token is back (only one: the burst caps it).
--
SELECT set_rate_limit('xtk_ingest', 2, 1);
SELECT * FROM calls('xtk_ingest', 3);
SELECT pg_sleep(0.6);
SELECT * FROM calls('xtk_ingest', 3);
-- The hint says when the next token comes: within half a second.
SELECT * FROM over_limit($$SELECT xtk_ingest('<limitedStg code="over" xtkschema="thr:limitedStg"/>')$$, 0, 0.5);

--
-- Removing the limit: every call passes again, the view shows no limit.
--
SELECT set_rate_limit('xtk_ingest', NULL);
SELECT * FROM calls('xtk_ingest', 20);
SELECT * FROM rate_limits WHERE api = 'xtk_ingest';

--
-- A limit is set for the whole cluster, outside transactions: a rollback
-- does not undo it.
--
BEGIN;
SELECT set_rate_limit('xtk_ingest_ext', 0.001, 1);
ROLLBACK;
SELECT api, per_second, burst FROM rate_limits WHERE per_second IS NOT NULL AND api <> 'logon_failure';
SELECT * FROM calls('xtk_ingest_ext', 2);
SELECT set_rate_limit('xtk_ingest_ext', NULL);

--
-- API functions written in SQL take their token with check_rate_limit().
--
SELECT set_rate_limit('subscribe', 0.001, 2);
SELECT * FROM calls('subscribe', 3);
SELECT * FROM over_limit($$SELECT check_rate_limit('subscribe')$$, 990, 1000);
SELECT set_rate_limit('subscribe', NULL);

--
-- Rights: campaign_admin sets limits and reads the view; an ingest role
-- does neither, and cannot take tokens of an API with check_rate_limit().
--
CREATE ROLE regress_throttle_admin IN ROLE campaign_admin;
CREATE ROLE regress_throttle_ingest IN ROLE campaign_ingest;
SET ROLE regress_throttle_admin;
SELECT set_rate_limit('ingestion_status', 100, 10);
SELECT api, per_second, burst FROM rate_limits WHERE per_second IS NOT NULL AND api <> 'logon_failure';
SELECT set_rate_limit('ingestion_status', NULL);
RESET ROLE;
SET ROLE regress_throttle_ingest;
SELECT * FROM expect_error($$SELECT set_rate_limit('xtk_ingest', 1)$$, false);
SELECT * FROM expect_error($$SELECT * FROM rate_limits$$, false);
SELECT * FROM expect_error($$SELECT check_rate_limit('xtk_ingest')$$, false);
RESET ROLE;
DROP ROLE regress_throttle_admin;
DROP ROLE regress_throttle_ingest;

-- No limit is left for the rest of the suite.
SELECT count(*) AS limited FROM rate_limits WHERE per_second IS NOT NULL AND api <> 'logon_failure';
