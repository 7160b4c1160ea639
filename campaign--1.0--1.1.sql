/* campaign--1.0--1.1.sql — upgrade of a 1.0 installation to 1.1.
 *
 * `campaign--1.0.sql` is released and never edited again: every SQL change
 * of release 1.1 goes here, in one section per change, each saying which
 * issue made it. `CREATE EXTENSION campaign` installs 1.0 and applies this
 * script, so a fresh install and an upgraded one run the same statements.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION campaign UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Replication engine (issues 10 and 11): rows the cloud rejected hold the
-- later changes of their keys behind them.  Such a held row carries
-- _stg_error = 'waiting behind change N of the same key, ...'.
--   * every staging table gets a partial index on its rows in error, through
--     which the worker finds the keys to hold (new staging tables get it from
--     register_schema);
--   * retry_errors() re-stages the rejected and the held rows, in their order;
--   * discard_errors() drops the rejected rows and re-stages the held ones;
--   * staging_status counts the held rows apart from the rejected ones.
-- ---------------------------------------------------------------------------
-- Numbers at or below replicated_upto that open ingest transactions may
-- still commit: replicated once they do (our copy of the cloud's).
ALTER TABLE schemas ADD COLUMN replicated_pending bigint[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN schemas.replicated_pending IS 'Staging numbers at or below replicated_upto not replicated yet: their transactions were open at the last batch';

DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT sql_schema, staging_table FROM @extschema@.schemas
              WHERE staging_table IS NOT NULL LOOP
        EXECUTE format('CREATE INDEX ON %I.%I (_stg_seq) WHERE _stg_error IS NOT NULL',
                       s.sql_schema, s.staging_table);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION discard_errors(schema text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas := campaign.staged_schema($1);
    tbl text := format('%I.%I', s.sql_schema, s.staging_table);
    cols text;
    n bigint;
BEGIN
    EXECUTE format('DELETE FROM %s WHERE _stg_error IS NOT NULL'
                   ' AND _stg_error NOT LIKE ''waiting behind change %%''', tbl);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- The held rows go back to staging, after everything else, in their order.
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute
     WHERE attrelid = tbl::regclass AND attnum > 0 AND NOT attisdropped
       AND attname NOT IN ('_stg_seq', '_stg_error');
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE _stg_error IS NOT NULL RETURNING *)'
                   ' INSERT INTO %s (%s) SELECT %s FROM moved ORDER BY _stg_seq',
                   tbl, tbl, cols, cols);
    PERFORM campaign.notify_worker();
    RETURN n;
END
$$;
COMMENT ON FUNCTION discard_errors(text) IS 'Drop the staged changes the cloud rejected; the changes held behind them are staged again, in their order';
COMMENT ON FUNCTION retry_errors(text) IS 'Stage again, in their order, the changes the cloud rejected and those held behind them';

CREATE FUNCTION open_ingest_transactions(OUT pid integer, OUT staging_table regclass,
                                         OUT first_seq bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'open_ingest_transactions'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION open_ingest_transactions() IS 'Ingest transactions still open, per staging table, with the first staging number each took: their rows replicate when they commit';
REVOKE ALL ON FUNCTION open_ingest_transactions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION open_ingest_transactions() TO campaign_admin;

DROP VIEW staging_status;
DROP FUNCTION staging_counts();
CREATE FUNCTION staging_counts()
RETURNS TABLE (namespace text, name text, pending bigint, oldest_pending timestamptz,
               errors bigint, held bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s campaign.schemas;
BEGIN
    FOR s IN SELECT * FROM campaign.schemas WHERE staging_table IS NOT NULL ORDER BY 1, 2 LOOP
        namespace := s.namespace;
        name := s.name;
        EXECUTE format('SELECT count(*), min(_lastmodified) FROM %I.%I'
                       ' WHERE (_stg_seq > $1 OR _stg_seq = ANY ($2)) AND _stg_error IS NULL',
                       s.sql_schema, s.staging_table)
           INTO pending, oldest_pending USING s.replicated_upto, s.replicated_pending;
        EXECUTE format('SELECT count(*) FILTER (WHERE _stg_error NOT LIKE ''waiting behind change %%''),'
                       '       count(*) FILTER (WHERE _stg_error LIKE ''waiting behind change %%'')'
                       '  FROM %I.%I WHERE _stg_error IS NOT NULL', s.sql_schema, s.staging_table)
           INTO errors, held;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE VIEW staging_status AS
SELECT s.namespace || ':' || s.name AS schema_name,
       s.mode,
       s.every,
       s.deployed_at IS NOT NULL AS deployed,
       c.pending,
       now() - c.oldest_pending AS oldest_pending_age,
       c.errors,
       s.last_replicated_at AS last_success,
       s.replicated_upto,
       CASE WHEN c.pending > 0 THEN now() - c.oldest_pending ELSE interval '0' END AS lag,
       c.held,
       o.pid AS open_ingest_pid,
       o.age AS open_ingest_age
  FROM campaign.schemas s
  JOIN campaign.staging_counts() c USING (namespace, name)
  LEFT JOIN LATERAL (
       SELECT t.pid, now() - a.xact_start AS age
         FROM campaign.open_ingest_transactions() t
         LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = t.pid
        WHERE t.staging_table = format('%I.%I', s.sql_schema, s.staging_table)::regclass
        ORDER BY t.first_seq LIMIT 1) o ON true;
COMMENT ON VIEW staging_status IS 'Per staged schema: mode, pending rows, rows in error and held behind them, last success, lag, the oldest ingest transaction still open';
REVOKE ALL ON FUNCTION staging_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION staging_counts() TO campaign_admin;
GRANT SELECT ON staging_status TO campaign_admin;
