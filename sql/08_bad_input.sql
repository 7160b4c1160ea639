--
-- 08_bad_input: every bad input of SPEC §3 gets a clear error with a proper
-- SQLSTATE, naming the record and the attribute and quoting the bad value
-- (shortened), and stages nothing ("nothing staged" is checked by
-- expect_error() after each failure, and by counts at the end).
--
SET search_path = public, campaign;
\pset null '(null)'

-- A staged schema with a required value, and a schema without staging.
SELECT register_schema($$
<srcSchema name="strict" namespace="bad">
  <element name="strict" autoStg="true">
    <attribute name="id" type="string" length="8" required="true"/>
    <attribute name="n" type="long"/>
    <attribute name="small" type="short"/>
    <attribute name="big" type="int64"/>
    <attribute name="ratio" type="double"/>
    <attribute name="flag" type="boolean"/>
    <attribute name="day" type="date"/>
    <attribute name="at" type="datetime"/>
    <attribute name="clock" type="time"/>
    <attribute name="span" type="timespan"/>
    <attribute name="ref" type="uuid"/>
  </element>
</srcSchema>$$);
SELECT register_schema($$
<srcSchema name="plain" namespace="bad">
  <element name="plain"><attribute name="id"/></element>
</srcSchema>$$);
SELECT staged_rows() AS staged_before \gset

--
-- Malformed XML (SQLSTATE 2200M, libxml2's diagnostics in DETAIL).
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="1">')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="1"/><strictStg/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id=1/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('not xml at all')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('')$$);
-- an entity that is not declared
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="&xxe;"/>')$$);

--
-- DOCTYPE, DTDs and entities are refused outright (XXE, billion laughs).
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<!DOCTYPE strictStg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<strictStg xtkschema="bad:strictStg" id="&xxe;"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<strictStg xtkschema="bad:strictStg" id="x" n="&lol9;"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<!DOCTYPE strictStg SYSTEM "http://127.0.0.1:1/evil.dtd"><strictStg xtkschema="bad:strictStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<!DOCTYPE strictStg [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><strictStg xtkschema="bad:strictStg" _key="@id" id="x"/>')$$);

-- Nesting is bounded (libxml2's limit of 256 levels, XML_PARSE_HUGE is
-- never set): a deeper document is refused by the parser.
SELECT e FROM expect_error(format('SELECT xtk_ingest(%L)',
       '<strictStg xtkschema="bad:strictStg" id="x"><n>' || repeat('<a>', 300) || repeat('</a>', 300) || '</n></strictStg>')) AS e
 WHERE e LIKE 'ERROR %' OR e LIKE '%Excessive depth%' OR e = 'nothing staged';

--
-- The schema: missing or malformed xtkschema, unknown schema, a record
-- element that does not match, a schema that is not staged.
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="strictStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strict Stg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<noSuchStg xtkschema="bad:noSuchStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<noSuchStg xtkschema="nope:noSuchStg" _key="@id" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<otherStg xtkschema="bad:strictStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strict xtkschema="bad:strictStg" id="x"/>')$$);
-- the schema itself rather than its staging schema
SELECT * FROM expect_error($$SELECT xtk_ingest('<strict xtkschema="bad:strict" id="x"/>')$$);
-- a schema registered without autoStg
SELECT * FROM expect_error($$SELECT xtk_ingest('<plainStg xtkschema="bad:plainStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<plainStg xtkschema="bad:plainStg" _key="@id" id="x"/>')$$);

--
-- Unknown attributes: as attribute, as child element, with a namespace.
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" nosuch="1"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x"><nosuch>1</nosuch></strictStg>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" xmlns:x="urn:x" id="x" x:id="1"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" xmlns:x="urn:x" id="x"><x:n>1</x:n></strictStg>')$$);
-- attribute names are matched exactly (case-sensitive), never as SQL
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" ID="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" n-1="1"/>')$$);

--
-- Values that do not parse as their type: the error names the attribute
-- and quotes the value.
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" n="abc"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" n="1.5"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" n="2147483648"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" small="40000"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" big="9223372036854775808"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" ratio="1,5"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" flag="maybe"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" day="2023-02-29"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" at="2024-13-01T00:00:00Z"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" clock="25:00"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" span="forever"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" ref="not-a-uuid"/>')$$);
-- also as a child element, and through IngestExt
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x"><n>abc</n></strictStg>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@id" id="x" n="abc"/>')$$);
-- A long bad value is quoted shortened in the message, not in full (the
-- value here is 5,003 bytes).
SELECT left(e, 12) AS sqlstate, length(e) < 200 AS shortened,
       e LIKE '%"abcxxxxxxxxxx%' AS quotes_the_value
  FROM expect_error(format($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="x" n="%s"/>')$$,
                           'abc' || repeat('x', 5000)), false) AS e;

--
-- A string over its length (counted in characters).
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="123456789"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@id" id="123456789"/>')$$);
SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="12345678"/>') <> '' AS eight_characters_pass;

--
-- A missing required value.
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" n="1"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" id="" n="1"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@n" _operation="insert" n="1"/>')$$);

--
-- _key naming an unknown attribute, or empty; a key attribute without value.
--
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@nope" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="id" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@id,@Nope" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" _key="@nope" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@id,@n" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@n" n="" id="x"/>')$$);

--
-- IngestExt without _key; bad _operation values.
--
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _operation="delete" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@id" _operation="upsert" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<strictStg xtkschema="bad:strictStg" _key="@id" _operation="DELETE" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" _operation="update" _key="@id" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<strictStg xtkschema="bad:strictStg" _operation="delete" _key="@id" id="x"/>')$$);

-- A NULL document: the functions are strict.
SELECT xtk_ingest(NULL::text) IS NULL AS null_in_null_out;

--
-- Values are data, never SQL: they are staged verbatim.
--
SELECT xtk_ingest($$<strictStg xtkschema="bad:strictStg" id="');--"/>$$) <> '' AS staged;
SELECT xtk_ingest_ext($$<strictStg xtkschema="bad:strictStg" _key="@id" id="x&quot;;DROP"/>$$);
SELECT id FROM bad.strictstg ORDER BY _stg_seq;

-- Exactly the three good records above were staged in this file.
SELECT staged_rows() - :staged_before AS staged_in_this_file;
