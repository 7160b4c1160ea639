--
-- 31_injection: injection through names and values (SPEC §3, §10).  Values
-- are data and are staged verbatim; names (xtkschema, _key, attributes,
-- and everything a source schema names) must match the registry or the
-- identifier rules, and nothing but the registered tables is ever touched.
--
SET search_path = public, campaign;
\pset null '(null)'

SELECT register_schema($$
<srcSchema name="victim" namespace="inj">
  <element name="victim" autoStg="true">
    <attribute name="id" type="string" length="100"/>
    <attribute name="v" type="memo"/>
    <attribute name="n" type="long"/>
  </element>
</srcSchema>$$);
-- A table that must never be touched, and a snapshot of what exists.
CREATE TABLE public.inj_canary (x int);
INSERT INTO public.inj_canary VALUES (1);
CREATE TEMP TABLE registry_before AS
  SELECT namespace, name, sql_schema, sql_table, staging_table FROM campaign.schemas;
CREATE TEMP TABLE relations_before AS
  SELECT c.oid FROM pg_class c WHERE c.relpersistence <> 't';
SELECT staged_rows() AS staged_before \gset

--
-- Values: quotes, semicolons, SQL, backslashes, tabs and newlines (as
-- character references, which survive attribute-value normalisation),
-- unicode, markup as entities.  Each comes back exactly as sent.
--
CREATE TEMP TABLE sent (id text, v text);
INSERT INTO sent VALUES
  ('q1', $v$it's "quoted"$v$),
  ('q2', $v$'); DROP TABLE public.inj_canary; --$v$),
  ('q3', $v$"; DELETE FROM campaign.schemas; --$v$),
  ('q4', $v$a;b;c$v$),
  ('q5', $v$back\slash \' \\ \x00 \n$v$),
  ('q6', E'tab\there\nnewline\r\ncrlf'),
  ('q7', 'unicode: é ß 日本語 😀 ‮rtl'),
  ('q8', '<b>&amp;</b> &lt;script&gt;'),
  ('q9', $v$$$ dollar $$ quoted $x$ $v$),
  ('q10', 'E''\\x41'' || chr(65)');
SELECT count(*) AS ingested FROM sent,
  LATERAL (SELECT xtk_ingest(format('<victimStg xtkschema="inj:victimStg" id="%s" v="%s"/>', id,
      replace(replace(replace(replace(replace(replace(replace(v, '&', '&amp;'), '"', '&quot;'), '<', '&lt;'),
              E'\t', '&#9;'), E'\n', '&#10;'), E'\r', '&#13;'), '''', '&apos;')))) AS i;
-- the same values as element text (CDATA) through IngestExt
SELECT count(*) AS ingested_ext FROM sent,
  LATERAL (SELECT xtk_ingest_ext(format('<victimStg xtkschema="inj:victimStg" _key="@id" id="%s-ext"><v><![CDATA[%s]]></v></victimStg>', id,
      replace(v, E'\r', ''))) ) AS i;
SELECT s.id, t.v = s.v AS attribute_verbatim, e.v = replace(s.v, E'\r', '') AS element_verbatim
  FROM sent s
  JOIN inj.victimstg t ON t.id = s.id
  JOIN inj.victimstg e ON e.id = s.id || '-ext'
 ORDER BY t._stg_seq;
SELECT count(*) AS canary_rows FROM public.inj_canary;
-- an injection in a typed value is a type error, quoted
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" n="1; DROP TABLE public.inj_canary"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" n="1)--"/>')$$);

--
-- xtkschema naming catalog, registry or other tables, or malformed: all
-- refused, nothing touched.
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<pg_classStg xtkschema="pg_catalog:pg_classStg" relname="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<pg_class xtkschema="pg_catalog:pg_class" relname="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<schemasStg xtkschema="campaign:schemasStg" namespace="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<schemas xtkschema="campaign:schemas" _key="@namespace" namespace="nms" _operation="delete"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<inj_canaryStg xtkschema="public:inj_canaryStg" x="2"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg;DROP TABLE public.inj_canary" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="&quot;inj&quot;:victimStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj.victimStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="INJ:victimStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimstg xtkschema="inj:victimstg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg:x" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema=" inj:victimStg" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema=":" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:" id="x"/>')$$);
SELECT * FROM expect_error(format('SELECT xtk_ingest(%L)', '<victimStg xtkschema="inj:' || repeat('v', 100000) || '" id="x"/>'));
-- a record whose xtkschema differs from its collection's
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg-collection xtkschema="inj:victimStg"><victimStg id="a"/><victimStg xtkschema="nms:recipientStg" id="b"/></victimStg-collection>')$$);

--
-- _key naming non-attributes: internal members, reserved attributes,
-- XPaths other than "@attribute", SQL.
--
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@_stg_seq" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@_uuid" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@xtkschema" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@_key" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@id)--" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@id;DROP TABLE public.inj_canary" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@&quot;id&quot;" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="victim/@id" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@*" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@ID" id="x"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="," id="x"/>')$$);

--
-- Internal members and reserved names given as data attributes or child
-- elements: they are not attributes of the schema.
--
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x" _stg_error="forged"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x" _stg_seq="1"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x" _uuid="00000000-0000-4000-8000-000000000000"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x" _carried="{n}"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x"><_stg_error>forged</_stg_error></victimStg>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x"><_operation>delete</_operation></victimStg>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x"><xtkschema>nms:recipientStg</xtkschema></victimStg>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@id" id="x"><_key>@n</_key></victimStg>')$$);
-- _operation as a data attribute of xtk_ingest is the operation, refused
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x" _operation="delete"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest_ext('<victimStg xtkschema="inj:victimStg" _key="@id" id="x" _operation="delete; DROP TABLE public.inj_canary"/>')$$);
-- attribute names that are SQL
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x" v.x="1"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg xtkschema="inj:victimStg" id="x"><v--DROP>1</v--DROP></victimStg>')$$);

--
-- Registration: names are identifiers of the Campaign kind (letters,
-- digits, underscores, at most 63 bytes), or refused; other values never
-- reach SQL as code.
--
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="inj"><element name="x"><attribute name="a" sqlname="a; drop table x"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="inj"><element name="x" sqltable="pg_catalog.pg_class"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="inj"><element name="x" sqltable="x&quot;; drop table public.inj_canary; --"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a&quot;b" namespace="inj"><element name="a&quot;b"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a b" namespace="inj"><element name="a b"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="é" namespace="inj"><element name="é"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="inj;drop"><element name="x"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="in&apos;j"><element name="x"/></srcSchema>')$$);
SELECT * FROM expect_error(format($$SELECT register_schema('<srcSchema name="%s" namespace="inj"><element name="%s"/></srcSchema>')$$, repeat('n', 64), repeat('n', 64)));
SELECT * FROM expect_error(format($$SELECT register_schema('<srcSchema name="x" namespace="%s"><element name="x"/></srcSchema>')$$, repeat('n', 64)));
-- 61 characters + "stg" is one too many for the staging table
SELECT * FROM expect_error(format($$SELECT register_schema('<srcSchema name="%s" namespace="inj"><element name="%s" autoStg="true"/></srcSchema>')$$, repeat('m', 61), repeat('m', 61)));
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><attribute name="a&apos;b"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><attribute name="_stg_error"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><attribute name="a" sqlname="_operation"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><attribute name="_key"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><attribute name="a" type="text); drop table public.inj_canary; --"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><attribute name="a" length="1); drop table public.inj_canary; --"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><key name="k&quot;"><keyfield xpath="@a"/></key><attribute name="a"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><key name="k"><keyfield xpath="@a); drop"/></key><attribute name="a"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="y" namespace="inj"><element name="y"><dbindex name="i; drop"><keyfield xpath="@a"/></dbindex><attribute name="a"/></element></srcSchema>')$$);
-- another schema's staging table through sqltable: refused, untouched
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="evil" namespace="nms"><element name="evil" sqltable="recipient" autoStg="true"><attribute name="extra"/></element></srcSchema>')$$, false);
SELECT count(*) AS extra_columns FROM pg_attribute WHERE attrelid = 'nms.recipientstg'::regclass AND attname = 'extra';

-- System schemas as the namespace are refused (however the refusal is
-- worded): nothing is created in them.
DO $$
DECLARE
    ns text;
BEGIN
    FOREACH ns IN ARRAY ARRAY['pg_catalog', 'pg_toast', 'pg_temp'] LOOP
        BEGIN
            PERFORM campaign.register_schema(format(
                '<srcSchema name="sys" namespace="%s"><element name="sys" autoStg="true"><attribute name="a"/></element></srcSchema>', ns));
            RAISE NOTICE 'namespace %: ACCEPTED', ns;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'namespace %: refused', ns;
        END;
    END LOOP;
END
$$;

-- Harmless values with SQL in them are just text (a label, a string default).
SELECT register_schema($$<srcSchema name="labelled" namespace="inj" label="'); DROP TABLE public.inj_canary; --">
  <element name="labelled" autoStg="true">
    <attribute name="a" default="'); DROP TABLE public.inj_canary; --" desc="$$ || '$x$; --' || $$"/>
  </element></srcSchema>$$);
SELECT label FROM campaign.schemas WHERE namespace = 'inj' AND name = 'labelled';
SELECT attribute, description FROM campaign.attributes WHERE namespace = 'inj' AND name = 'labelled';

--
-- Only the intended objects exist: the registry gained inj:victim and
-- inj:labelled, the new relations are theirs (tables and their sequences
-- and indexes, in schema inj), the canary is intact, nothing was staged
-- outside the victim table.
--
SELECT r.namespace, r.name, r.sql_schema, r.sql_table, r.staging_table
  FROM campaign.schemas r
 WHERE (r.namespace, r.name) NOT IN (SELECT namespace, name FROM registry_before)
 ORDER BY 1, 2;
SELECT count(*) AS registry_rows_changed
  FROM (SELECT namespace, name, sql_schema, sql_table, staging_table FROM registry_before
        EXCEPT SELECT namespace, name, sql_schema, sql_table, staging_table FROM campaign.schemas) AS gone;
SELECT c.relnamespace::regnamespace AS schema, c.relname, c.relkind
  FROM pg_class c
 WHERE c.relpersistence <> 't' AND c.relnamespace <> 'pg_toast'::regnamespace
   AND c.oid NOT IN (SELECT oid FROM relations_before)
 ORDER BY 1, 2;
SELECT count(*) AS canary_rows FROM public.inj_canary;
SELECT staged_rows() - :staged_before AS staged_in_this_file, (SELECT count(*) FROM inj.victimstg) AS in_victim;

DROP TABLE public.inj_canary;

--
-- Reserved places and names: a namespace may not be the system's or the
-- extension's schema, and xtkschema is not an attribute name.
--
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="evil" namespace="campaign"><element name="evil" autoStg="true"><attribute name="a"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="information_schema"><element name="x" autoStg="true"><attribute name="a"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="pg_catalog"><element name="x" autoStg="true"><attribute name="a"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="x" namespace="inj"><element name="x"><attribute name="xtkschema"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<s:srcSchema xmlns:s="urn:s" name="nsd" namespace="inj"><element name="nsd"/></s:srcSchema>')$$);
SELECT count(*) AS reserved_registered FROM campaign.schemas
 WHERE namespace IN ('campaign', 'information_schema', 'pg_catalog') OR name IN ('evil', 'nsd');

-- Records and collections in a foreign namespace are not records of the schema.
SELECT * FROM expect_error($$SELECT xtk_ingest('<h:victimStg xmlns:h="urn:h" xtkschema="inj:victimStg" id="ns1"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<h:victimStg-collection xmlns:h="urn:h" xtkschema="inj:victimStg"><victimStg id="ns2"/></h:victimStg-collection>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<victimStg-collection xtkschema="inj:victimStg"><h:victimStg xmlns:h="urn:h" id="ns3"/></victimStg-collection>')$$);

-- The XML declaration does not change how the text is read: it is already
-- in the server encoding (here UTF-8), so é stays é.
SELECT xtk_ingest_ext('<?xml version="1.0" encoding="ISO-8859-1"?><victimStg _key="@id" id="enc-é" xtkschema="inj:victimStg"/>');
SELECT id, id = 'enc-' || U&'\00E9' AS verbatim FROM inj.victimstg WHERE id LIKE 'enc-%';
