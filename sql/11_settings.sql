--
-- 11_settings: a document means the same whatever the calling session's
-- settings (DateStyle, IntervalStyle, TimeZone, extra_float_digits): dates
-- and times are ISO 8601, a datetime without an offset is UTC, a timespan
-- is seconds or an ISO 8601 duration (README: "Values", "Server settings").
--
SET search_path = public, campaign;
\pset null '(null)'

SELECT register_schema($$
<srcSchema name="settingsTypes" namespace="tst">
  <element name="settingsTypes" autoStg="true">
    <key name="id"><keyfield xpath="@id"/></key>
    <attribute name="id" type="string" length="20"/>
    <attribute name="aString" type="string" length="10"/>
    <attribute name="aMemo" type="memo"/>
    <attribute name="aBoolean" type="boolean"/>
    <attribute name="aLong" type="long"/>
    <attribute name="aInt64" type="int64"/>
    <attribute name="aDouble" type="double"/>
    <attribute name="aDate" type="date"/>
    <attribute name="aDatetime" type="datetime"/>
    <attribute name="aDatetimenotz" type="datetimenotz"/>
    <attribute name="aTime" type="time"/>
    <attribute name="aTimespan" type="timespan"/>
    <attribute name="aDefaultAt" type="datetime" default="2026-01-01 00:00:00"/>
  </element>
</srcSchema>$$);

-- One document, five records of edge values, inserted (so that the
-- default applies); BATCH is replaced by the name of the session that
-- ingests it.  The longest string is 10 characters of
-- 2 bytes each.
\set doc '<settingsTypesStg-collection xtkschema="tst:settingsTypesStg" _key="@id" _operation="insert"> <settingsTypesStg id="BATCH-1" aString="plain" aMemo="tab&#9;nl&#10;end" aBoolean="true" aLong="2147483647" aInt64="-9223372036854775808" aDouble="0.12345678901234566" aDate="2026-11-05" aDatetime="2026-11-05 10:20:30.123+01:00" aDatetimenotz="2026-11-05T10:20:30" aTime="10:20:30.5" aTimespan="3600"/> <settingsTypesStg id="BATCH-2" aString="ÀÉÎÕÜñçßøå" aMemo="Zoë, Ñandú, 東京, 🎉" aBoolean="0" aDouble="NaN" aDate="-0043-03-15" aDatetime="2026-11-05T10:20:30" aDatetimenotz="0000-01-01T00:00:00" aTime="24:00:00" aTimespan="P1Y2M3DT4H5M6.789012S"/> <settingsTypesStg id="BATCH-3" aBoolean="1" aDouble="-0" aDate="+12345-06-07" aDatetime="infinity" aDatetimenotz="-infinity" aTime="23:59:59.999999" aTimespan="-1.5"/> <settingsTypesStg id="BATCH-4" aBoolean="false" aDouble="-Infinity" aDate="infinity" aDatetime="-4713-11-24T00:00:00Z" aDatetimenotz="12345-06-07T08:09:10.0000005" aTime="00:00" aTimespan="-1 day 02:00:00"/> <settingsTypesStg id="BATCH-5" aDouble="4.9e-324" aDate="2024-02-29" aDatetime="2026-11-05T10:20:30.000001-09:30" aDatetimenotz="2026-11-05" aTime=" 12:00:00 " aTimespan="P0.5D"/> </settingsTypesStg-collection>'

-- The same document from four sessions with different settings.
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 1;
SELECT xtk_ingest_ext(replace(:'doc', 'BATCH', 'iso'));

SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET TimeZone = 'Pacific/Chatham';
SET extra_float_digits = -3;
SELECT xtk_ingest_ext(replace(:'doc', 'BATCH', 'sqldmy'));

SET DateStyle = 'German';
SET IntervalStyle = 'iso_8601';
SET TimeZone = 'America/Los_Angeles';
SET extra_float_digits = 0;
SELECT xtk_ingest_ext(replace(:'doc', 'BATCH', 'german'));

SET DateStyle = 'Postgres, YMD';
SET IntervalStyle = 'postgres_verbose';
SET TimeZone = 'Asia/Kathmandu';
SET extra_float_digits = 3;
SELECT xtk_ingest_ext(replace(:'doc', 'BATCH', 'postgres'));

-- Read back in one fixed format.
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 3;

-- Each record stored the same values from every session: one distinct row
-- (all columns but the id) per record, ingested four times.
SELECT split_part(id, '-', 2) AS record, count(*) AS sessions,
       count(DISTINCT (astring, amemo, aboolean, along, aint64, adouble::text,
                       adate, adatetime, adatetimenotz, atime,
                       atimespan::text, adefaultat)) AS distinct_values
  FROM tst.settingstypesstg GROUP BY 1 ORDER BY 1;

-- The values themselves (those of the session with the most unusual
-- settings).  No offset is UTC; 0000 is 1 BC, -0043 is 44 BC; a fraction
-- is rounded to the microsecond; 24:00:00 is kept; a timespan in seconds
-- has no day part; "-1 day 02:00:00" is read as under IntervalStyle
-- postgres; the default without an offset is UTC too.
\x on
SELECT id, astring, length(astring) AS string_chars, amemo, aboolean, along,
       aint64, adouble, adate, adatetime, adatetimenotz, atime, atimespan,
       adefaultat
  FROM tst.settingstypesstg WHERE id LIKE 'sqldmy-%' ORDER BY id;
\x off

-- Exact values, compared as values.
SELECT adouble = 0.12345678901234566::float8 AS double_exact,
       adatetime = '2026-11-05 09:20:30.123+00' AS datetime_offset,
       adatetimenotz = '2026-11-05 10:20:30'::timestamp AS notz_as_written,
       atimespan = interval '1 hour' AS timespan_seconds
  FROM tst.settingstypesstg WHERE id = 'german-1';
SELECT minus_zero.adouble = 0 AND minus_zero.adouble::text = '-0' AS minus_zero,
       bc.adate = '0044-03-15 BC'::date AS bc,
       bc.adatetime = '2026-11-05 10:20:30+00' AS no_offset_is_utc
  FROM tst.settingstypesstg bc, tst.settingstypesstg minus_zero
 WHERE bc.id = 'german-2' AND minus_zero.id = 'german-3';

-- A subscription's "created" is written by the extension itself in ISO 8601
-- UTC: under 'SQL, DMY' and a far time zone it is the transaction's start.
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Pacific/Chatham';
SELECT xtk_ingest_ext('<serviceStg _key="@name" name="settingsNews" label="News" xtkschema="nms:serviceStg"/>');
BEGIN;
SELECT subscribe('settingsNews', '<recipient email="dmy@example.com"/>', true) > 0 AS staged;
SELECT created = now() AS created_is_now
  FROM nms.subscriptionrcpstg WHERE email = 'dmy@example.com';
COMMIT;
RESET DateStyle;
RESET TimeZone;

--
-- What the rules refuse, with the rule in the hint.
--
-- Non-ISO dates (read differently under different DateStyles), named zones,
-- an offset on a datetimenotz or a time, leap seconds, 24:00 with minutes.
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDate="05/11/2026"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDate="Nov 5 2026"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDate="2026-11-05 BC"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDatetime="2026-11-05 10:20:30 Europe/Paris"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDatetime="now"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDatetime="2026-11-05T10:20:30+16:00"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDatetimenotz="2026-11-05T10:20:30+01:00"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aTime="10:20:30Z"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aTime="23:59:60"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aTime="24:00:01"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDatetime="2026-11-05T24:30:00Z"/>')$$, false);
-- Out of range: a 29th of February out of a leap year, beyond the types.
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDate="2026-02-29"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDate="5874898-01-01"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDatetime="294277-01-01T00:00:00Z"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDatetime="-4713-11-23T23:59:59Z"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aTimespan="99999999999999999999"/>')$$, false);
-- Numbers and booleans: decimal only, xs:boolean only.
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDouble="0x10"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aDouble="1e400"/>')$$, false);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="bad" aBoolean="yes"/>')$$, false);
-- A timespan under another IntervalStyle is still read as postgres: the
-- sql_standard reading of "-1 day 02:00:00" would be -1 day -02:00:00.
SET IntervalStyle = 'sql_standard';
SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="span" aTimespan="-1 day 02:00:00"/>');
SET IntervalStyle = 'postgres';
SELECT atimespan, atimespan = interval '-1 day' + interval '2 hours' AS postgres_reading
  FROM tst.settingstypesstg WHERE id = 'span';

-- A schema default is read by the same rules when registered.
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="badDefault" namespace="tst"><element name="badDefault" autoStg="true"><attribute name="d" type="date" default="05/11/2026"/></element></srcSchema>')$$, false);

--
-- Other settings of the calling session.
--
-- A read-only transaction (default_transaction_read_only, or a standby)
-- is refused before anything is written.
SET default_transaction_read_only = on;
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="ro"/>')$$);
RESET default_transaction_read_only;

-- session_replication_role = replica: ingest writes below the executor and
-- fires no trigger under any role; it stages as usual.
SET session_replication_role = replica;
SELECT campaign.xtk_ingest_ext('<settingsTypesStg xtkschema="tst:settingsTypesStg" _key="@id" id="replica" aLong="8"/>');
RESET session_replication_role;
SELECT along FROM tst.settingstypesstg WHERE id = 'replica';
