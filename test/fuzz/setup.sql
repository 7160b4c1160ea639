-- The database the fuzz targets run against (scripts/fuzz.sh).  The record
-- target's documents name these schemas in xtkschema; the schema target's
-- documents register new schemas or re-register (evolve) these.
CREATE EXTENSION campaign CASCADE;

-- Every Campaign type, a key and an index, with defaults.
SELECT campaign.register_schema($$
<srcSchema name="allTypes" namespace="fz" label="Every type">
  <element name="allTypes" autoStg="true">
    <key name="code"><keyfield xpath="@code"/></key>
    <dbindex name="byEmail"><keyfield xpath="@email"/></dbindex>
    <attribute name="code" type="string" length="20"/>
    <attribute name="email" type="string" length="80"/>
    <attribute name="note" type="memo"/>
    <attribute name="flag" type="boolean" default="false"/>
    <attribute name="tiny" type="byte"/>
    <attribute name="small" type="short"/>
    <attribute name="num" type="long" default="0"/>
    <attribute name="big" type="int64"/>
    <attribute name="ratio" type="float"/>
    <attribute name="amount" type="double"/>
    <attribute name="day" type="date"/>
    <attribute name="stamp" type="datetime"/>
    <attribute name="local" type="datetimenotz"/>
    <attribute name="clock" type="time"/>
    <attribute name="span" type="timespan"/>
    <attribute name="id" type="uuid"/>
  </element>
</srcSchema>$$);

-- No key: every record is an insert with a generated UUID.
SELECT campaign.register_schema($$
<srcSchema name="event" namespace="fz">
  <element name="event" autoStg="true" autouuid="true">
    <attribute name="kind" type="string" length="10"/>
    <attribute name="at" type="datetime"/>
  </element>
</srcSchema>$$);

-- A composite key and renamed columns.
SELECT campaign.register_schema($$
<srcSchema name="Pair" namespace="fz">
  <element name="Pair" autoStg="true" sqltable="pairs">
    <key name="both" internal="true"><keyfield xpath="@a"/><keyfield xpath="@b"/></key>
    <attribute name="a" type="long" sqlname="left_part"/>
    <attribute name="b" type="string" length="5" sqlname="right_part"/>
  </element>
</srcSchema>$$);

-- A registered schema without a staging table.
SELECT campaign.register_schema($$
<srcSchema name="plain" namespace="fz">
  <element name="plain">
    <attribute name="x" type="long"/>
  </element>
</srcSchema>$$);
