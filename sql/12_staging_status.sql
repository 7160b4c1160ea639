--
-- 12_staging_status: what campaign.staging_status counts in a staging table:
-- pending, the rows above the watermark and the pending numbers at or below
-- it (their transactions were open at the last batch), each once; not the
-- replicated rows staging keeps; the rows the cloud rejected (errors) and
-- those held behind them (held) apart, whatever the watermark.  (The
-- replication worker moves the watermark; here it is set by hand.)
--
SET search_path = public, campaign;
SET client_min_messages = warning;
SELECT register_schema($$
<srcSchema name="status" namespace="st">
  <element name="status" autoStg="true"><attribute name="id"/></element>
</srcSchema>$$);
RESET client_min_messages;
-- Changes 1 to 10.
SELECT count(xtk_ingest(format('<statusStg xtkschema="st:statusStg" id="%s"/>', i)))
  FROM generate_series(1, 10) i;
SELECT min(_stg_seq), max(_stg_seq) FROM st.statusstg;

CREATE FUNCTION pg_temp.status(OUT pending bigint, OUT waiting boolean, OUT errors bigint, OUT held bigint)
LANGUAGE sql AS $$
    SELECT pending, oldest_pending_age IS NOT NULL, errors, held
      FROM campaign.staging_status WHERE schema_name = 'st:status'
$$;
CREATE PROCEDURE pg_temp.watermark(upto bigint, pending bigint[])
LANGUAGE sql AS $$
    UPDATE campaign.schemas SET replicated_upto = upto, replicated_pending = pending
     WHERE namespace = 'st' AND name = 'status'
$$;

-- Nothing replicated: all 10 pending.
SELECT * FROM pg_temp.status();
-- Replicated up to 8 but for 3 and 5: 3, 5, 9 and 10 pending.
CALL pg_temp.watermark(8, '{3,5}');
SELECT * FROM pg_temp.status();
-- 9 rejected by the cloud, 10 held behind it: 3 and 5 pending.
UPDATE st.statusstg SET _stg_error = 'cloud: value too long' WHERE _stg_seq = 9;
UPDATE st.statusstg SET _stg_error = 'waiting behind change 9 of the same key, rejected: cloud: value too long'
 WHERE _stg_seq = 10;
SELECT * FROM pg_temp.status();
-- A pending number in error counts as an error, not as pending.
UPDATE st.statusstg SET _stg_error = 'cloud: bad value' WHERE _stg_seq = 3;
SELECT * FROM pg_temp.status();
-- A pending number above the watermark counts once: 5, 7 and 8.
CALL pg_temp.watermark(6, '{5,7}');
SELECT * FROM pg_temp.status();
-- Everything replicated: nothing pending, the errors still counted.
CALL pg_temp.watermark(10, '{}');
SELECT * FROM pg_temp.status();
