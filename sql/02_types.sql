--
-- 02_types: every Campaign type and its PostgreSQL mapping (SPEC §2),
-- checked in the catalog and by ingesting and reading back values.
--
SET search_path = public, campaign;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
\pset null '(null)'

-- One attribute per type; noType has no type (so it is a string), and
-- noTypeLen a length without a type.
SELECT register_schema($$
<srcSchema name="allTypes" namespace="tst" label="Every Campaign type">
  <element name="allTypes" autoStg="true">
    <attribute name="aString" type="string" length="30"/>
    <attribute name="aDefaultString" type="string"/>
    <attribute name="noType"/>
    <attribute name="noTypeLen" length="12"/>
    <attribute name="aMemo" type="memo"/>
    <attribute name="aBoolean" type="boolean"/>
    <attribute name="aByte" type="byte"/>
    <attribute name="aShort" type="short"/>
    <attribute name="aLong" type="long"/>
    <attribute name="aInt64" type="int64"/>
    <attribute name="aFloat" type="float"/>
    <attribute name="aDouble" type="double"/>
    <attribute name="aDate" type="date"/>
    <attribute name="aDatetime" type="datetime"/>
    <attribute name="aDatetimenotz" type="datetimenotz"/>
    <attribute name="aTime" type="time"/>
    <attribute name="aTimespan" type="timespan"/>
    <attribute name="aUuid" type="uuid"/>
  </element>
</srcSchema>$$);

-- The staging table's columns, as the catalog has them: first the internal
-- members, then one column per attribute (lower-case names) of the mapped type.
SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.attidentity AS identity,
       pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'tst.alltypesstg'::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum;

-- The registry agrees with the catalog for every attribute (the registry
-- writes varchar(n) where the catalog says character varying(n)).
SELECT r.attribute, r.type, r.length, r.sql_name, r.sql_type,
       format_type(a.atttypid, a.atttypmod) AS column_type,
       a.atttypid = r.sql_type::regtype
       AND a.atttypmod = coalesce(r.length + 4, -1) AS matches_catalog
  FROM campaign.attributes r
  JOIN pg_attribute a ON a.attrelid = 'tst.alltypesstg'::regclass AND a.attname = r.sql_name
 WHERE r.namespace = 'tst' AND r.name = 'allTypes'
 ORDER BY r.position;

-- The only index of the staging table is the primary key on _stg_seq, the
-- staging sequence that fixes the order of changes.
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) AS definition
  FROM pg_index WHERE indrelid = 'tst.alltypesstg'::regclass;

-- A value of every type, as Campaign writes them in XML.
SELECT is_uuid(xtk_ingest($$<allTypesStg xtkschema="tst:allTypesStg"
    aString="hello, world" aDefaultString="default length" noType="no type"
    noTypeLen="twelve chars" aMemo="a memo"
    aBoolean="true" aByte="127" aShort="-32768" aLong="2147483647"
    aInt64="9223372036854775807" aFloat="1.5" aDouble="-2.25e-10"
    aDate="2024-02-29" aDatetime="2024-03-01 10:20:30.123Z"
    aDatetimenotz="2024-03-01 10:20:30" aTime="23:59:59"
    aTimespan="3600" aUuid="a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"/>$$)) AS returned_uuid;

-- Other spellings: ISO 8601 with T and an offset, booleans as 0/1, numbers
-- with exponents or signs, a timespan as an interval, upper-case UUID.
SELECT is_uuid(xtk_ingest($$<allTypesStg xtkschema="tst:allTypesStg"
    aString="second" aBoolean="0" aByte="-128" aShort="32767" aLong="-2147483648"
    aInt64="-9223372036854775808" aFloat="-1e3" aDouble="+0.5"
    aDate="1970-01-01" aDatetime="2024-03-01T12:20:30+02:00"
    aDatetimenotz="2024-03-01T10:20:30" aTime="00:00"
    aTimespan="1 day 02:00:00" aUuid="A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"/>$$)) AS returned_uuid;

-- Empty values: '' for the strings, NULL for every other type.
SELECT is_uuid(xtk_ingest($$<allTypesStg xtkschema="tst:allTypesStg"
    aString="" aMemo="" aBoolean="" aByte="" aShort="" aLong="" aInt64=""
    aFloat="" aDouble="" aDate="" aDatetime="" aDatetimenotz="" aTime=""
    aTimespan="" aUuid=""/>$$)) AS returned_uuid;

\x on
SELECT row_number() OVER (ORDER BY _stg_seq) AS record,
       astring, adefaultstring, notype, notypelen, amemo, aboolean, abyte,
       ashort, along, aint64, afloat, adouble, adate, adatetime,
       adatetimenotz, atime, atimespan, auuid, _operation, _key, _carried
  FROM tst.alltypesstg ORDER BY _stg_seq;
\x off

-- The values are stored with the PostgreSQL types (not as text).
SELECT pg_typeof(aboolean) AS boolean, pg_typeof(abyte) AS byte,
       pg_typeof(along) AS long, pg_typeof(aint64) AS int64,
       pg_typeof(afloat) AS float, pg_typeof(adatetime) AS datetime,
       pg_typeof(atimespan) AS timespan, pg_typeof(auuid) AS uuid
  FROM tst.alltypesstg LIMIT 1;
SELECT adatetime = '2024-03-01 10:20:30.123+00' AS datetime_utc,
       atimespan = interval '1 hour' AS timespan_seconds,
       adouble = -2.25e-10 AS double_exact
  FROM tst.alltypesstg ORDER BY _stg_seq LIMIT 1;

-- The default length of a string is 255: 255 characters pass, 256 do not.
SELECT is_uuid(xtk_ingest(format('<allTypesStg xtkschema="tst:allTypesStg" aDefaultString="%s"/>',
                                 repeat('x', 255)))) AS accepted_255;
SELECT * FROM expect_error(format($$SELECT xtk_ingest('<allTypesStg xtkschema="tst:allTypesStg" noType="%s"/>')$$,
                                  repeat('y', 256)));
-- A memo has no length limit.
SELECT is_uuid(xtk_ingest(format('<allTypesStg xtkschema="tst:allTypesStg" aMemo="%s"/>',
                                 repeat('z', 100000)))) AS accepted_memo;
SELECT length(amemo) FROM tst.alltypesstg WHERE amemo LIKE 'zzz%';

SELECT count(*) AS staged FROM tst.alltypesstg;
