--
-- 03_keys_naming: keys and indexes, SQL naming (lower-case rule, sqltable,
-- sqlname), label/desc -> COMMENT, required, default, notNull; and the
-- source schemas register_schema() refuses.
--
SET search_path = public, campaign;
\pset null '(null)'

-- Naming rule: SQL schema = namespace, table = sqltable or the schema name,
-- column = sqlname or the attribute name, all folded to lower case as
-- PostgreSQL folds unquoted identifiers; the staging table is the table
-- name followed by "stg".
SELECT register_schema($$
<srcSchema name="Customer" namespace="Crm" label="Customers" desc="schema desc">
  <element name="Customer" sqltable="CrmCustomer" autoStg="true"
           label="Customer record" desc="One row per customer">
    <key name="email"><keyfield xpath="@Email"/></key>
    <key name="id" internal="true"><keyfield xpath="@customerId"/></key>
    <key name="nameCountry"><keyfield xpath="@LastName"/><keyfield xpath="@country"/></key>
    <dbindex name="byCountry"><keyfield xpath="@country"/></dbindex>
    <dbindex name="emailUnique" unique="true"><keyfield xpath="@Email"/></dbindex>
    <attribute name="customerId" type="string" length="16" required="true"
               label="Customer id" desc="Key from the CRM"/>
    <attribute name="Email" type="string" length="80" sqlname="EmailAddress" label="E-mail"/>
    <attribute name="LastName" label="Last name"/>
    <attribute name="country" type="string" length="2" default="'FR'" desc="ISO country code"/>
    <attribute name="status" type="short" default="1"/>
    <attribute name="vip" type="boolean" default="false" notNull="true"/>
    <attribute name="points" type="long" notNull="true"/>
    <attribute name="nickname" type="string" length="10" default="''"/>
    <attribute name="note" label="Note of O'Brien; DROP TABLE x"/>
    <attribute name="user" type="long" label="A reserved word as column name"/>
  </element>
</srcSchema>$$);

-- The registry row: SQL schema and tables lower-cased, label and desc of
-- the element (which override those of <srcSchema>).
SELECT namespace, name, label, description, sql_schema, sql_table, staging_table,
       autopk, autouuid
  FROM campaign.schemas WHERE namespace = 'Crm';

-- The staging table and its columns, with the comments made from label and
-- desc ("label: desc" when both are given).
SELECT obj_description('crm.crmcustomerstg'::regclass, 'pg_class') AS table_comment;
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       col_description(a.attrelid, a.attnum) AS comment
  FROM pg_attribute a
 WHERE a.attrelid = 'crm.crmcustomerstg'::regclass AND a.attnum > 7 AND NOT a.attisdropped
 ORDER BY a.attnum;

-- What the registry keeps of the attributes.
SELECT attribute, sql_name, type, length, required, not_null, default_value
  FROM campaign.attributes WHERE namespace = 'Crm' AND name = 'Customer'
 ORDER BY position;

-- Keys: the one marked internal="true" is primary even though it is not the
-- first; a key may have several fields.  dbindex: unique="true" honoured.
SELECT key_name, position, is_primary, fields
  FROM campaign.keys WHERE namespace = 'Crm' ORDER BY position;
SELECT index_name, position, is_unique, fields
  FROM campaign.indexes WHERE namespace = 'Crm' ORDER BY position;

-- Without internal="true", the first key is the primary one.
SELECT register_schema($$
<srcSchema name="order" namespace="Crm">
  <element name="order" autoStg="true">
    <key name="orderNo"><keyfield xpath="@orderNo"/></key>
    <key name="external"><keyfield xpath="@extId"/></key>
    <attribute name="orderNo" type="long"/>
    <attribute name="extId" type="string" length="36"/>
  </element>
</srcSchema>$$);
SELECT key_name, position, is_primary, fields
  FROM campaign.keys WHERE namespace = 'Crm' AND name = 'order' ORDER BY position;
SELECT to_regclass('crm.orderstg') AS staging_table;

--
-- required, default and notNull at ingestion.
--

-- Absent attributes with a default get it on insert (quoted 'FR', bare 1,
-- false, quoted empty ''), and the defaulted attributes count as carried.
-- A notNull attribute without default that is absent stays NULL (not carried).
SELECT xtk_ingest($$<CustomerStg xtkschema="Crm:CustomerStg" customerId="C1"
    Email="c1@example.com" LastName="Smith" user="7"/>$$) <> '' AS got_uuid;
SELECT customerid, emailaddress, lastname, country, status, vip, points, nickname,
       "user", _carried
  FROM crm.crmcustomerstg ORDER BY _stg_seq;

-- Given values win over defaults.
SELECT xtk_ingest($$<CustomerStg xtkschema="Crm:CustomerStg" customerId="C2"
    country="SE" status="5" vip="true" points="10" nickname="Bob"/>$$) <> '' AS got_uuid;
SELECT customerid, country, status, vip, points, nickname, _carried
  FROM crm.crmcustomerstg ORDER BY _stg_seq DESC LIMIT 1;

-- A required attribute must be given (and not empty) on insert.
SELECT * FROM expect_error($$SELECT xtk_ingest('<CustomerStg xtkschema="Crm:CustomerStg" Email="x@example.com"/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<CustomerStg xtkschema="Crm:CustomerStg" customerId=""/>')$$);
-- notNull: an explicitly empty value is refused.
SELECT * FROM expect_error($$SELECT xtk_ingest('<CustomerStg xtkschema="Crm:CustomerStg" customerId="C3" points=""/>')$$);
SELECT * FROM expect_error($$SELECT xtk_ingest('<CustomerStg xtkschema="Crm:CustomerStg" customerId="C3" vip=""/>')$$);

-- An update (IngestExt) carries only what it is given: neither required
-- nor default applies, and nothing else is carried.
SELECT xtk_ingest_ext($$<CustomerStg xtkschema="Crm:CustomerStg" _key="@Email"
    Email="c1@example.com" LastName="Smith-Jones"/>$$);
SELECT _operation, _key, customerid, emailaddress, lastname, country, status, vip, _carried
  FROM crm.crmcustomerstg ORDER BY _stg_seq DESC LIMIT 1;

-- A key of several fields.
SELECT xtk_ingest_ext($$<CustomerStg xtkschema="Crm:CustomerStg" _key="@LastName, @country"
    LastName="Smith" country="FR" points="3"/>$$);
SELECT _operation, _key, lastname, country, points, _carried
  FROM crm.crmcustomerstg ORDER BY _stg_seq DESC LIMIT 1;

-- The column named after a reserved word works through ingest.
SELECT xtk_ingest($$<orderStg xtkschema="Crm:orderStg" orderNo="1001" extId="E-1"/>$$) <> '' AS got_uuid;
SELECT orderno, extid, _carried FROM crm.orderstg;

--
-- Source schemas that register_schema() refuses, with their errors.  None
-- of them changes the registry.
--
CREATE TEMP TABLE registry_before AS
    SELECT (SELECT count(*) FROM campaign.schemas) AS schemas,
           (SELECT count(*) FROM campaign.attributes) AS attributes;

-- not a srcSchema / no element named after the schema
SELECT * FROM expect_error($$SELECT register_schema('<schema name="a" namespace="b"/>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="other"/></srcSchema>')$$);
-- unknown type, bad string lengths
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" type="varchar"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" length="0"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" length="ten"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" length="10485761"/></element></srcSchema>')$$);
-- attribute names: reserved (leading underscore), duplicated, clashing SQL
-- names, a reserved sqlname
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="_key"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x"/><attribute name="x"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="Abc"/><attribute name="abc"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" sqlname="_stg_seq"/></element></srcSchema>')$$);
-- names that are not identifiers are refused, never quoted into SQL
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b;drop"><element name="a"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x&quot;); DROP TABLE t; --"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a" sqltable="t x"/></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" sqlname="1x"/></element></srcSchema>')$$);
SELECT * FROM expect_error(format($$SELECT register_schema('<srcSchema name="%s" namespace="b"><element name="%s"/></srcSchema>')$$,
                                  repeat('n', 64), repeat('n', 64)));
-- 61 characters are a valid name, but the staging table would need 64
SELECT * FROM expect_error(format($$SELECT register_schema('<srcSchema name="%s" namespace="b"><element name="%s" autoStg="true"/></srcSchema>')$$,
                                  repeat('n', 61), repeat('n', 61)));
-- keys: unknown field, xpath not an attribute, no keyfield, defined twice
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><key name="k"><keyfield xpath="@nope"/></key><attribute name="x"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><key name="k"><keyfield xpath="x"/></key><attribute name="x"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><dbindex name="i"/><attribute name="x"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><key name="k"><keyfield xpath="@x"/></key><key name="k"><keyfield xpath="@x"/></key><attribute name="x"/></element></srcSchema>')$$);
-- defaults must be values of the attribute's type
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" type="long" default="abc"/></element></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><attribute name="x" length="2" default="''abc''"/></element></srcSchema>')$$);
-- sub-elements (links, collections) are not supported
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"><element name="sub"/></element></srcSchema>')$$);
-- malformed XML and a DOCTYPE
SELECT * FROM expect_error($$SELECT register_schema('<srcSchema name="a" namespace="b"><element name="a"></srcSchema>')$$);
SELECT * FROM expect_error($$SELECT register_schema('<!DOCTYPE srcSchema [<!ENTITY e "x">]><srcSchema name="a" namespace="b"><element name="a"/></srcSchema>')$$);

SELECT (SELECT count(*) FROM campaign.schemas) = schemas AS schemas_unchanged,
       (SELECT count(*) FROM campaign.attributes) = attributes AS attributes_unchanged,
       to_regnamespace('b') IS NULL AS no_schema_b
  FROM registry_before;
