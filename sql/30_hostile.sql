--
-- 30_hostile: hostile documents (SPEC §3 XML safety, §10).  Each one gets a
-- clear error with a proper SQLSTATE and stages nothing (expect_error()
-- says "nothing staged"), and the server stays up (SELECT 1 after each
-- group).  08_bad_input covers the plain cases; this file pushes harder.
--
SET search_path = public, campaign;
\pset null '(null)'

SELECT register_schema($$
<srcSchema name="target" namespace="hostile">
  <element name="target" autoStg="true">
    <attribute name="id" type="string" length="20"/>
    <attribute name="code" type="string" length="10"/>
    <attribute name="n" type="long"/>
    <attribute name="notes" type="memo"/>
  </element>
</srcSchema>$$);
SELECT staged_rows() AS staged_before \gset

-- hostile_error(cmd): expect_error(cmd) without the DETAIL lines in which
-- libxml2 quotes the document and points at the column (they are long and
-- say nothing more than the "line 1: ..." lines).
CREATE FUNCTION public.hostile_error(cmd text) RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT e FROM public.expect_error(cmd) AS e
     WHERE NOT (e LIKE 'DETAIL: %' AND e NOT LIKE 'DETAIL: line %' AND e NOT LIKE 'DETAIL: DOCTYPE%')
       AND e NOT LIKE 'CONTEXT: SQL function %'
$$;

--
-- External entities: file and http SYSTEM ids, PUBLIC ids, parameter
-- entities, an external DTD alone, entities declared in a collection.
--
SELECT * FROM hostile_error($$SELECT xtk_ingest('<?xml version="1.0"?><!DOCTYPE targetStg [<!ENTITY e SYSTEM "file:///etc/passwd">]><targetStg xtkschema="hostile:targetStg" notes="&e;"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<!DOCTYPE targetStg [<!ENTITY e SYSTEM "http://127.0.0.1:1/secret">]><targetStg xtkschema="hostile:targetStg"><notes>&e;</notes></targetStg>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<!DOCTYPE targetStg PUBLIC "-//X//Y" "http://127.0.0.1:1/x.dtd"><targetStg xtkschema="hostile:targetStg"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<!DOCTYPE targetStg [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p; <!ENTITY % q "<!ENTITY x ''y''>"> %q;]><targetStg xtkschema="hostile:targetStg" notes="&x;"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest_ext('<!DOCTYPE targetStg-collection [<!ENTITY e SYSTEM "file:///etc/hostname">]><targetStg-collection xtkschema="hostile:targetStg"><targetStg _key="@id" id="&e;"/></targetStg-collection>')$$);
-- a DOCTYPE after comments and processing instructions is found as well
SELECT * FROM hostile_error($$SELECT xtk_ingest('<?xml version="1.0"?><!-- c --><?pi x?>  <!DOCTYPE targetStg SYSTEM "file:///etc/passwd"><targetStg xtkschema="hostile:targetStg"/>')$$);
-- and through the xml type (which keeps a DOCTYPE when it is cast as a document)
SELECT * FROM hostile_error($$SELECT xtk_ingest(XMLPARSE(DOCUMENT '<!DOCTYPE targetStg [<!ENTITY e "x">]><targetStg xtkschema="hostile:targetStg" notes="&e;"/>'))$$);
-- XInclude is not processed: the element is just an unknown child
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" parse="text"/></targetStg>')$$);
SELECT 1 AS alive;

--
-- Billion laughs, and the quadratic blowup (one big entity repeated).
--
SELECT * FROM hostile_error($$SELECT xtk_ingest('<?xml version="1.0"?>
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
<targetStg-collection xtkschema="hostile:targetStg"><targetStg><notes>&lol9;</notes></targetStg></targetStg-collection>')$$);
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<!DOCTYPE targetStg [<!ENTITY big "' || repeat('x', 50000) || '">]><targetStg xtkschema="hostile:targetStg" notes="'
       || repeat('&big;', 50000) || '"/>')) AS e;
-- the same bombs in a source schema
SELECT * FROM hostile_error($$SELECT register_schema('<!DOCTYPE srcSchema [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><srcSchema name="bomb" namespace="hostile" label="&b;"><element name="bomb"/></srcSchema>')$$);
SELECT * FROM hostile_error($$SELECT register_schema('<!DOCTYPE srcSchema [<!ENTITY e SYSTEM "file:///etc/passwd">]><srcSchema name="xxe" namespace="hostile" label="&e;"><element name="xxe"/></srcSchema>')$$);
SELECT 1 AS alive;

--
-- Very deep nesting: 10,000 levels inside a record, inside a collection,
-- and in a source schema: libxml2's depth limit (256, XML_PARSE_HUGE is
-- never set) stops the parser.  The DETAIL lines that quote the document
-- are left out.
--
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<targetStg xtkschema="hostile:targetStg"><notes>' || repeat('<a>', 10000) || repeat('</a>', 10000) || '</notes></targetStg>')) AS e
 WHERE e LIKE 'ERROR %' OR e LIKE '%Excessive depth%' OR e LIKE 'CONTEXT: %' OR e = 'nothing staged';
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<targetStg-collection xtkschema="hostile:targetStg"><targetStg id="1"/>' || repeat('<targetStg>', 10000) || repeat('</targetStg>', 10000) || '</targetStg-collection>')) AS e
 WHERE e LIKE 'ERROR %' OR e LIKE '%Excessive depth%' OR e LIKE 'CONTEXT: %' OR e = 'nothing staged';
SELECT e FROM hostile_error(format('SELECT register_schema(%L)',
       '<srcSchema name="deep" namespace="hostile"><element name="deep">' || repeat('<element>', 10000) || repeat('</element>', 10000) || '</element></srcSchema>')) AS e
 WHERE e LIKE 'ERROR %' OR e LIKE '%Excessive depth%' OR e LIKE 'CONTEXT: %' OR e = 'nothing staged';
-- unclosed deep nesting (the parser must not recurse to the end either)
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<targetStg xtkschema="hostile:targetStg">' || repeat('<a>', 100000))) AS e
 WHERE e LIKE 'ERROR %' OR e LIKE '%Excessive depth%' OR e LIKE 'CONTEXT: %' OR e = 'nothing staged';
SELECT staged_rows() - :staged_before AS staged_so_far;
SELECT 1 AS alive;

--
-- Huge values and names.  A 1 MB value for a string(10) attribute: the
-- error quotes it shortened.  A 1 MB memo value is fine (staged, then
-- removed again below).  A 100 KB attribute name is unknown, quoted
-- shortened.
--
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<targetStg xtkschema="hostile:targetStg" code="' || repeat('y', 1048576) || '"/>')) AS e;
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<targetStg xtkschema="hostile:targetStg" ' || repeat('k', 102400) || '="1"/>')) AS e;
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<targetStg xtkschema="hostile:targetStg"><' || repeat('k', 102400) || '>1</' || repeat('k', 102400) || '></targetStg>')) AS e;
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<' || repeat('T', 102400) || ' xtkschema="hostile:targetStg"/>')) AS e;
SELECT e FROM hostile_error(format('SELECT xtk_ingest(%L)',
       '<targetStg xtkschema="hostile:' || repeat('t', 102400) || 'Stg"/>')) AS e;
SELECT e FROM hostile_error(format('SELECT xtk_ingest_ext(%L)',
       '<targetStg xtkschema="hostile:targetStg" _key="@' || repeat('i', 102400) || '" id="1"/>')) AS e;
SELECT e FROM hostile_error(format('SELECT xtk_ingest_ext(%L)',
       '<targetStg xtkschema="hostile:targetStg" _key="@id" _operation="' || repeat('d', 102400) || '" id="1"/>')) AS e;
SELECT is_uuid(xtk_ingest('<targetStg xtkschema="hostile:targetStg" id="big" notes="' || repeat('m', 1048576) || '"/>')) AS is_uuid;
SELECT length(notes) AS memo_length, notes = repeat('m', 1048576) AS verbatim FROM hostile.targetstg WHERE id = 'big';
DELETE FROM hostile.targetstg WHERE id = 'big';
SELECT 1 AS alive;

--
-- Characters XML forbids: NUL and other control characters, as character
-- references or raw; U+FFFE / U+FFFF; lone surrogates.
--
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" code="a&#0;b"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg"><notes>a&#x0;b</notes></targetStg>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" code="&#xFFFE;"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" code="&#xFFFF;"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" code="&#xD800;"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" code="&#x110000;"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" code="&#1;"/>')$$);
SELECT * FROM hostile_error(format('SELECT xtk_ingest(%L)', '<targetStg xtkschema="hostile:targetStg" code="a' || chr(1) || 'b"/>'));
SELECT * FROM hostile_error(format('SELECT xtk_ingest(%L)', '<targetStg xtkschema="hostile:targetStg" code="' || chr(65534) || '"/>'));

--
-- Encodings.  The database is UTF-8 and text cannot hold invalid UTF-8:
-- an overlong sequence is refused by convert_from before it reaches us.
-- The XML declaration is ignored: a text argument is already in the server
-- encoding, so even an unknown declared encoding stages the record (id "x").
--
SELECT * FROM hostile_error($$SELECT convert_from('\x3c7461726765745374672078746b736368656d613d22686f7374696c653a746172676574537467222069643d22c0af222f3e'::bytea, 'UTF8')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<?xml version="1.0" encoding="no-such-encoding"?><targetStg xtkschema="hostile:targetStg" id="x"/>')$$);
SELECT 1 AS alive;

--
-- Namespaces: undeclared prefixes are malformed XML; reserved attributes
-- (xtkschema, _key, _operation) and data attributes in a namespace are not
-- ours; the xml: prefix bound elsewhere is malformed.  A namespace
-- declaration itself is harmless and accepted.
--
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" u:id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<u:targetStg xtkschema="hostile:targetStg" id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg-collection xtkschema="hostile:targetStg"><targetStg id="x"/><u:targetStg id="y"/></targetStg-collection>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xmlns:h="urn:h" h:xtkschema="hostile:targetStg" id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" xmlns:h="urn:h" h:_key="@id" id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest_ext('<targetStg xtkschema="hostile:targetStg" xmlns:h="urn:h" _key="@id" h:_operation="delete" id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" xmlns:h="urn:h" h:id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" xmlns:a="urn:a" xmlns:b="urn:a" a:id="x" b:id="y"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" xmlns:xml="urn:x" id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" xml:lang="en" id="x"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" id="x" id="y"/>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" id="x"><id>y</id></targetStg>')$$);
SELECT * FROM hostile_error($$SELECT register_schema('<srcSchema xmlns:s="urn:s" s:name="nsd" namespace="hostile"><element name="nsd"/></srcSchema>')$$);
SELECT is_uuid(xtk_ingest('<targetStg xtkschema="hostile:targetStg" xmlns:h="urn:h" id="ns-decl"/>')) AS namespace_declaration_ignored;
SELECT 1 AS alive;

--
-- Thousands of attributes: 5,000 unknown ones (the first is named), and
-- 5,000 repetitions of one (libxml2 reports each, only the first line is
-- shown here).
--
SELECT * FROM hostile_error(format('SELECT xtk_ingest(%L)', '<targetStg xtkschema="hostile:targetStg" id="x" '
       || (SELECT string_agg(format('a%s="%s"', i, i), ' ') FROM generate_series(1, 5000) i) || '/>'));
SELECT * FROM expect_error(format('SELECT xtk_ingest(%L)', '<targetStg xtkschema="hostile:targetStg" '
       || (SELECT string_agg(format('id="%s"', i), ' ') FROM generate_series(1, 5000) i) || '/>'), false);
SELECT staged_rows() - :staged_before AS staged_so_far;
SELECT 1 AS alive;

--
-- A collection of 200,000 records, fine except the last one: all or
-- nothing, the error names record 200,000, and it takes well under the
-- statement_timeout set here.
--
SET statement_timeout = '20s';
SELECT * FROM hostile_error(format('SELECT xtk_ingest(%L)', '<targetStg-collection xtkschema="hostile:targetStg">'
       || repeat('<targetStg id="ok" n="1"/>', 199999) || '<targetStg id="bad" n="x"/></targetStg-collection>'));
SELECT * FROM hostile_error(format('SELECT xtk_ingest_ext(%L)', '<targetStg-collection xtkschema="hostile:targetStg">'
       || repeat('<targetStg _key="@id" id="ok" n="1"/>', 199999) || '<targetStg id="bad" n="1"/></targetStg-collection>'));
-- truncated after its last record
SELECT * FROM hostile_error(format('SELECT xtk_ingest(%L)', '<targetStg-collection xtkschema="hostile:targetStg">'
       || repeat('<targetStg id="ok" n="1"/>', 199999) || '<targetStg id="bad" n="1">'));
-- the same collection, all good, goes in whole
SELECT cardinality(string_to_array(xtk_ingest('<targetStg-collection xtkschema="hostile:targetStg">'
       || repeat('<targetStg id="ok" n="1"/>', 200000) || '</targetStg-collection>'), ',')) AS uuids;
SELECT count(*) AS staged, count(*) FILTER (WHERE id = 'ok' AND n = 1) AS ok FROM hostile.targetstg;
RESET statement_timeout;
DELETE FROM hostile.targetstg WHERE id = 'ok';
SELECT 1 AS alive;

--
-- Comments and processing instructions between records and inside
-- records are accepted (and ignored); text, CDATA or an element of
-- unknown name in a record's body is refused.
--
SELECT cardinality(string_to_array(xtk_ingest('<?xml version="1.0"?><!-- before --><?pi before?>
<targetStg-collection xtkschema="hostile:targetStg"><!-- c1 --><?pi one?>
  <targetStg id="c1"/><!-- c2 -->
  <?pi two?><targetStg id="c2"><!-- in --><?pi in?><notes>a<!-- x -->b<?pi y?>c</notes></targetStg>
</targetStg-collection><!-- after --><?pi after?>'), ',')) AS uuids;
SELECT id, notes FROM hostile.targetstg WHERE id IN ('c1', 'c2') ORDER BY _stg_seq;
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" id="t"><![CDATA[<notes>x</notes>]]></targetStg>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" id="t">loose text</targetStg>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg-collection xtkschema="hostile:targetStg"><targetStg id="t1"/>loose<targetStg id="t2"/></targetStg-collection>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg-collection xtkschema="hostile:targetStg"><targetStg id="t1"/><![CDATA[x]]></targetStg-collection>')$$);
SELECT * FROM hostile_error($$SELECT xtk_ingest('<targetStg xtkschema="hostile:targetStg" id="t"><notes><b>bold</b></notes></targetStg>')$$);
-- CDATA inside a memo element is its text
SELECT is_uuid(xtk_ingest('<targetStg xtkschema="hostile:targetStg" id="cdata"><notes><![CDATA[<b>&amp;</b>]]></notes></targetStg>')) AS is_uuid;
SELECT notes FROM hostile.targetstg WHERE id = 'cdata';

-- What this file staged: the namespace-declaration record, c1, c2 and
-- cdata (the 1 MB and 200,000-record ones were removed again).
SELECT id FROM hostile.targetstg ORDER BY _stg_seq;
SELECT staged_rows() - :staged_before AS staged_in_this_file;
SELECT 1 AS alive;

DROP FUNCTION public.hostile_error(text);
