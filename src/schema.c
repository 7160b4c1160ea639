/*-------------------------------------------------------------------------
 *
 * schema.c
 *	  campaign.register_schema(): Campaign source schemas -> the registry
 *	  tables and the staging table.
 *
 * A source schema (<srcSchema name= namespace=><element name= ...>) is
 * parsed with libxml2 into a ParsedSchema, checked (names, types, keys,
 * defaults), then applied in one transaction:
 *	  1. DDL on the staging table (autoStg="true"): create it, or evolve it
 *	     against what the registry held before: added attribute -> ADD
 *	     COLUMN, removed -> DROP COLUMN, new type/length -> ALTER TYPE, new
 *	     sqlname/sqltable -> RENAME.  Dropping a column or the whole table
 *	     (autoStg removed) is refused while unreplicated staged rows need it,
 *	     unless the caller forces it.
 *	  2. The registry rows (campaign.schemas, attributes, keys, indexes) are
 *	     replaced.
 *	  3. A relcache invalidation of the staging table tells every backend's
 *	     registry cache (registry.c) to reload.
 *
 * Naming: the SQL schema is the namespace, the table the schema name and the
 * columns the attribute names, all folded to lower case as PostgreSQL folds
 * unquoted identifiers; sqltable and sqlname override (and are folded too).
 * The staging table is the table name followed by "stg".  Every name is
 * checked by campaign_check_name() and quoted with quote_identifier().
 *
 * The SQL function is SECURITY DEFINER, so the DDL runs as the extension's
 * owner and the objects belong to it.  A new staging table grants nothing
 * to anyone but its administrators: campaign_admin gets INSERT, UPDATE and
 * DELETE with grant option (and USAGE on its SQL schema), so that it can
 * grant the ingest rights of rights.c; row-level security without any
 * policy keeps those privileges from opening the table to direct writes.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include <libxml/parser.h>

PG_FUNCTION_INFO_V1(register_schema);

/* Campaign types and the PostgreSQL types they map to. */
typedef struct TypeMapping
{
	const char *campaign;
	const char *sql;			/* for string: without the length */
} TypeMapping;

static const TypeMapping type_mappings[] = {
	{"string", "varchar"},
	{"memo", "text"},
	{"boolean", "boolean"},
	{"byte", "smallint"},
	{"short", "smallint"},
	{"long", "integer"},
	{"int64", "bigint"},
	{"float", "double precision"},
	{"double", "double precision"},
	{"date", "date"},
	{"datetime", "timestamp with time zone"},
	{"datetimenotz", "timestamp without time zone"},
	{"time", "time without time zone"},
	{"timespan", "interval"},
	{"uuid", "uuid"},
};

#define DEFAULT_STRING_LENGTH 255
#define MAX_STRING_LENGTH 10485760

typedef struct SchemaAttribute
{
	char	   *name;
	char	   *sqlname;
	char	   *type;
	char	   *sqltype;
	int			length;
	char	   *label;
	char	   *desc;
	bool		required;
	bool		not_null;
	char	   *default_value;
} SchemaAttribute;

typedef struct SchemaKey
{
	char	   *name;
	bool		primary;		/* key: the primary one; dbindex: unique */
	List	   *fields;			/* attribute names */
} SchemaKey;

typedef struct ParsedSchema
{
	char	   *namespace;
	char	   *name;
	char	   *label;
	char	   *desc;
	char	   *sql_table;
	char	   *staging_table;	/* NULL without autoStg */
	bool		autopk;
	bool		autouuid;
	List	   *attributes;		/* of SchemaAttribute */
	List	   *keys;			/* of SchemaKey */
	List	   *indexes;		/* of SchemaKey */
} ParsedSchema;

/* ---------- parsing ---------- */

static char *
prop(xmlNodePtr node, const char *name)
{
	xmlAttrPtr	attr = xmlHasProp(node, (const xmlChar *) name);

	return (attr && attr->ns == NULL) ? campaign_xml_attr(attr) : NULL;
}

static bool
bool_prop(xmlNodePtr node, const char *name)
{
	char	   *value = prop(node, name);

	return value && (strcmp(value, "true") == 0 || strcmp(value, "1") == 0);
}

static bool
is_element(xmlNodePtr node, const char *name)
{
	return node->type == XML_ELEMENT_NODE &&
		strcmp((const char *) node->name, name) == 0;
}

/* A name folded to lower case, as an unquoted SQL identifier is. */
static char *
sql_name(const char *name)
{
	char	   *folded = pstrdup(name);
	char	   *p;

	for (p = folded; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	return folded;
}

static char *
campaign_sql_table(const char *name, const char *sqltable)
{
	return sql_name(sqltable ? sqltable : name);
}

static SchemaAttribute *
find_attribute(ParsedSchema *ps, const char *name)
{
	ListCell   *lc;

	foreach(lc, ps->attributes)
	{
		SchemaAttribute *a = lfirst(lc);

		if (strcmp(a->name, name) == 0)
			return a;
	}
	return NULL;
}

/* Campaign's default="..." : a quoted literal or a bare value. */
static char *
parse_default(SchemaAttribute *a, const char *raw)
{
	int			len = strlen(raw);
	char	   *value;
	Oid			typid;
	int32		typmod;
	Oid			infunc;
	Oid			ioparam;

	if (len >= 2 && raw[0] == '\'' && raw[len - 1] == '\'')
		value = pnstrdup(raw + 1, len - 2);
	else
		value = pstrdup(raw);

	/*
	 * The default must be a value of the attribute's type, read as ingest
	 * reads values.
	 */
	parseTypeString(a->sqltype, &typid, &typmod, false);
	getTypeInputInfo(typid, &infunc, &ioparam);
	if (typid == VARCHAROID || typid == TEXTOID)
		OidInputFunctionCall(infunc, value, ioparam, typmod);
	else if (value[0] != '\0')
	{
		FmgrInfo	flinfo;

		fmgr_info(infunc, &flinfo);
		campaign_value_in(a->name, a->type, typid, &flinfo, ioparam, value);
	}
	return value;
}

/* SQL schemas a namespace may not be: the system's and the extension's. */
static bool
reserved_namespace(const char *sqlname)
{
	return strncmp(sqlname, "pg_", 3) == 0 ||
		strcmp(sqlname, "information_schema") == 0 ||
		strcmp(sqlname, "campaign") == 0;
}

static SchemaAttribute *
parse_attribute(ParsedSchema *ps, xmlNodePtr node)
{
	SchemaAttribute *a = palloc0(sizeof(SchemaAttribute));
	char	   *length;
	char	   *sqlname;
	char	   *def;
	int			i;

	a->name = prop(node, "name");
	campaign_check_name(a->name, "attribute name");
	if (a->name[0] == '_' || strcmp(a->name, "xtkschema") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("attribute name \"%s\" is reserved", a->name),
				 errdetail("xtkschema and names beginning with an underscore are reserved by the ingest documents and the staging tables.")));
	if (find_attribute(ps, a->name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("attribute \"%s\" is defined twice", a->name)));

	a->type = prop(node, "type");
	if (a->type == NULL)
		a->type = "string";
	for (i = 0; i < lengthof(type_mappings); i++)
		if (strcmp(a->type, type_mappings[i].campaign) == 0)
			break;
	if (i == lengthof(type_mappings))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("attribute \"%s\" has unknown type \"%s\"", a->name,
						campaign_shorten(a->type)),
				 errhint("Use string, memo, boolean, byte, short, long, int64, float, double, date, datetime, datetimenotz, time, timespan or uuid.")));

	length = prop(node, "length");
	if (strcmp(a->type, "string") == 0)
	{
		char	   *end;
		long		n = length ? strtol(length, &end, 10) : DEFAULT_STRING_LENGTH;

		if (length && (*end != '\0' || n < 1 || n > MAX_STRING_LENGTH))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("attribute \"%s\" has invalid length \"%s\"",
							a->name, campaign_shorten(length)),
					 errhint("A string length is a whole number from 1 to %d.",
							 MAX_STRING_LENGTH)));
		a->length = n;
		a->sqltype = psprintf("varchar(%d)", a->length);
	}
	else
		a->sqltype = pstrdup(type_mappings[i].sql);

	sqlname = prop(node, "sqlname");
	if (sqlname)
		campaign_check_name(sqlname, "sqlname");
	a->sqlname = sql_name(sqlname ? sqlname : a->name);
	if (a->sqlname[0] == '_')
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("sqlname \"%s\" is reserved", a->sqlname),
				 errdetail("Names beginning with an underscore are the internal members of staging tables.")));

	a->label = prop(node, "label");
	a->desc = prop(node, "desc");
	a->required = bool_prop(node, "required");
	a->not_null = bool_prop(node, "notNull");
	def = prop(node, "default");
	if (def)
		a->default_value = parse_default(a, def);
	return a;
}

/* <key> or <dbindex> with its <keyfield xpath="@attr"/> children. */
static SchemaKey *
parse_key(ParsedSchema *ps, xmlNodePtr node, const char *what)
{
	SchemaKey  *k = palloc0(sizeof(SchemaKey));
	xmlNodePtr	child;

	k->name = prop(node, "name");
	campaign_check_name(k->name, psprintf("%s name", what));
	for (child = node->children; child; child = child->next)
	{
		char	   *xpath;

		if (!is_element(child, "keyfield"))
			continue;
		xpath = prop(child, "xpath");
		if (xpath == NULL || xpath[0] != '@' || !find_attribute(ps, xpath + 1))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("%s \"%s\" names unknown field \"%s\"", what, k->name,
							xpath ? campaign_shorten(xpath) : ""),
					 errhint("A keyfield xpath is \"@name\" of an attribute declared in the element.")));
		k->fields = lappend(k->fields, xpath + 1);
	}
	if (k->fields == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\" has no keyfield", what, k->name)));
	return k;
}

/* Parse the source schema document into *(ParsedSchema **) result. */
static void
parse_schema(xmlDocPtr doc, void *result)
{
	xmlNodePtr	root = xmlDocGetRootElement(doc);
	xmlNodePtr	element = NULL;
	xmlNodePtr	child;
	ParsedSchema *ps = palloc0(sizeof(ParsedSchema));
	SchemaKey  *primary = NULL;
	ListCell   *lc;

	if (!is_element(root, "srcSchema") || (root->ns && root->ns->prefix))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("source schema root element is <%s%s%s>, not <srcSchema>",
						root->ns && root->ns->prefix ?
						campaign_shorten((const char *) root->ns->prefix) : "",
						root->ns && root->ns->prefix ? ":" : "",
						campaign_shorten((const char *) root->name))));
	ps->namespace = prop(root, "namespace");
	ps->name = prop(root, "name");
	campaign_check_name(ps->namespace, "schema namespace");
	campaign_check_name(ps->name, "schema name");
	if (reserved_namespace(sql_name(ps->namespace)))
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("schema namespace \"%s\" is reserved", ps->namespace),
				 errdetail("Namespaces pg_*, information_schema and campaign are PostgreSQL's or the extension's own.")));
	ps->label = prop(root, "label");
	ps->desc = prop(root, "desc");

	for (child = root->children; child; child = child->next)
		if (is_element(child, "element"))
		{
			char	   *name = prop(child, "name");

			if (name && strcmp(name, ps->name) == 0)
				element = child;
		}
	if (element == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("source schema \"%s:%s\" has no <element name=\"%s\">",
						ps->namespace, ps->name, ps->name)));

	if (prop(element, "label"))
		ps->label = prop(element, "label");
	if (prop(element, "desc"))
		ps->desc = prop(element, "desc");
	if (prop(element, "sqltable"))
		campaign_check_name(prop(element, "sqltable"), "sqltable");
	ps->sql_table = campaign_sql_table(ps->name, prop(element, "sqltable"));
	ps->autopk = bool_prop(element, "autopk");
	ps->autouuid = bool_prop(element, "autouuid");
	if (bool_prop(element, "autoStg"))
	{
		ps->staging_table = psprintf("%sstg", ps->sql_table);
		campaign_check_name(ps->staging_table, "staging table name");
	}

	/* Attributes first: keys and indexes refer to them. */
	for (child = element->children; child; child = child->next)
	{
		if (is_element(child, "attribute"))
		{
			SchemaAttribute *a = parse_attribute(ps, child);
			ListCell   *lc2;

			foreach(lc2, ps->attributes)
				if (strcmp(((SchemaAttribute *) lfirst(lc2))->sqlname, a->sqlname) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_COLUMN),
							 errmsg("attributes \"%s\" and \"%s\" have the same SQL name \"%s\"",
									((SchemaAttribute *) lfirst(lc2))->name,
									a->name, a->sqlname)));
			ps->attributes = lappend(ps->attributes, a);
		}
		else if (is_element(child, "element"))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("sub-element <element name=\"%s\"> of schema \"%s:%s\" is not supported",
							campaign_shorten(prop(child, "name") ? prop(child, "name") : ""),
							ps->namespace, ps->name),
					 errhint("Declare the values as attributes of the main element.")));
	}
	for (child = element->children; child; child = child->next)
	{
		if (is_element(child, "key"))
		{
			SchemaKey  *k = parse_key(ps, child, "key");

			if (primary == NULL && bool_prop(child, "internal"))
				primary = k;
			ps->keys = lappend(ps->keys, k);
		}
		else if (is_element(child, "dbindex"))
		{
			SchemaKey  *k = parse_key(ps, child, "dbindex");

			k->primary = bool_prop(child, "unique");
			ps->indexes = lappend(ps->indexes, k);
		}
	}
	if (primary == NULL && ps->keys != NIL)
		primary = linitial(ps->keys);
	if (primary)
		primary->primary = true;
	foreach(lc, ps->keys)
	{
		ListCell   *lc2;

		for_each_cell(lc2, ps->keys, lnext(ps->keys, lc))
			if (strcmp(((SchemaKey *) lfirst(lc))->name,
					   ((SchemaKey *) lfirst(lc2))->name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("key \"%s\" is defined twice",
								((SchemaKey *) lfirst(lc))->name)));
	}
	*(ParsedSchema **) result = ps;
}

/* ---------- SQL helpers (inside SPI) ---------- */

static void
run_sql(const char *sql)
{
	SPI_execute(sql, false, 0);
}

static int64
count_unreplicated(const char *qualified_table, const char *attribute,
				   int64 replicated_upto)
{
	StringInfoData sql;
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		args[2] = {Int64GetDatum(replicated_upto),
	attribute ? CStringGetTextDatum(attribute) : (Datum) 0};
	bool		isnull;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT count(*) FROM %s WHERE " STG_COL_SEQ " > $1",
					 qualified_table);
	if (attribute)
		appendStringInfoString(&sql, " AND $2 = ANY(" STG_COL_CARRIED ")");
	SPI_execute_with_args(sql.data, attribute ? 2 : 1, argtypes, args, NULL,
						  false, 1);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

static void
refuse_if_unreplicated(const char *qualified_table, const char *attribute,
					   int64 replicated_upto, bool force, const char *what)
{
	int64		n;

	if (force)
		return;
	n = count_unreplicated(qualified_table, attribute, replicated_upto);
	if (n > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot drop %s: " INT64_FORMAT " staged rows are not replicated yet",
						what, n),
				 errhint("Replicate them first, or call campaign.register_schema(..., force => true) to drop them.")));
}

static bool
table_exists(const char *qualified)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(qualified)};
	bool		isnull;

	SPI_execute_with_args("SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, argtypes,
						  args, NULL, false, 1);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									  1, &isnull));
}

static void
comment_on(const char *object, const char *label, const char *desc)
{
	StringInfoData sql;
	const char *text;

	if (label && desc)
		text = psprintf("%s: %s", label, desc);
	else
		text = label ? label : desc;
	initStringInfo(&sql);
	appendStringInfo(&sql, "COMMENT ON %s IS %s", object,
					 text ? quote_literal_cstr(text) : "NULL");
	run_sql(sql.data);
}

/*
 * A re-created staging table continues the sequence after the watermark,
 * so that its rows are never taken for rows already replicated.
 */
static void
create_staging_table(ParsedSchema *ps, const char *qualified, int64 replicated_upto)
{
	StringInfoData sql;
	ListCell   *lc;

	initStringInfo(&sql);
	if (!OidIsValid(get_namespace_oid(sql_name(ps->namespace), true)))
		run_sql(psprintf("CREATE SCHEMA %s", quote_identifier(sql_name(ps->namespace))));

	appendStringInfo(&sql,
					 "CREATE TABLE %s ("
					 STG_COL_SEQ " bigint GENERATED ALWAYS AS IDENTITY (START WITH "
					 INT64_FORMAT ") PRIMARY KEY, "
					 STG_COL_UUID " uuid NOT NULL DEFAULT gen_random_uuid(), "
					 STG_COL_OPERATION " text NOT NULL DEFAULT 'insert', "
					 STG_COL_KEY " text[], "
					 STG_COL_CARRIED " text[] NOT NULL, "
					 STG_COL_LASTMOD " timestamptz NOT NULL DEFAULT now(), "
					 STG_COL_ERROR " text",
					 qualified, replicated_upto + 1);
	foreach(lc, ps->attributes)
	{
		SchemaAttribute *a = lfirst(lc);

		appendStringInfo(&sql, ", %s %s", quote_identifier(a->sqlname), a->sqltype);
	}
	appendStringInfoString(&sql, ")");
	run_sql(sql.data);
	/* The worker finds the rows in error (and their keys) through it. */
	run_sql(psprintf("CREATE INDEX ON %s (" STG_COL_SEQ ") WHERE " STG_COL_ERROR " IS NOT NULL",
					 qualified));

	run_sql(psprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", qualified));
	run_sql(psprintf("GRANT USAGE ON SCHEMA %s TO campaign_admin",
					 quote_identifier(sql_name(ps->namespace))));
	run_sql(psprintf("GRANT INSERT, UPDATE, DELETE ON %s TO campaign_admin WITH GRANT OPTION",
					 qualified));
}

/* Does the table have that (live) column?  Columns dropped by hand count as gone. */
static bool
column_exists(const char *qualified, const char *column)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(qualified), CStringGetTextDatum(column)};

	SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass"
						  " AND attname = $2 AND NOT attisdropped",
						  2, argtypes, args, NULL, false, 1);
	return SPI_processed > 0;
}

/*
 * Evolve an existing staging table from the attributes registered before
 * (old_* arrays, by attribute name) to the new ones.  What the table really
 * has is checked, so that a column dropped by hand is added back.
 */
static void
evolve_staging_table(ParsedSchema *ps, const char *qualified, int nold,
					 char **old_names, char **old_sqlnames, char **old_types,
					 int64 replicated_upto, bool force)
{
	ListCell   *lc;
	int			i;

	for (i = 0; i < nold; i++)
	{
		if (find_attribute(ps, old_names[i]) || !column_exists(qualified, old_sqlnames[i]))
			continue;
		refuse_if_unreplicated(qualified, old_names[i], replicated_upto, force,
							   psprintf("attribute \"%s\"", old_names[i]));
		run_sql(psprintf("ALTER TABLE %s DROP COLUMN %s", qualified,
						 quote_identifier(old_sqlnames[i])));
	}
	foreach(lc, ps->attributes)
	{
		SchemaAttribute *a = lfirst(lc);
		const char *col = quote_identifier(a->sqlname);

		for (i = 0; i < nold; i++)
			if (strcmp(old_names[i], a->name) == 0)
				break;
		if (i < nold && strcmp(old_sqlnames[i], a->sqlname) != 0 &&
			column_exists(qualified, old_sqlnames[i]) &&
			!column_exists(qualified, a->sqlname))
			run_sql(psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qualified,
							 quote_identifier(old_sqlnames[i]), col));
		if (!column_exists(qualified, a->sqlname))
			run_sql(psprintf("ALTER TABLE %s ADD COLUMN %s %s", qualified, col,
							 a->sqltype));
		else if (i < nold && strcmp(old_types[i], a->sqltype) != 0)
		{
			/*
			 * Between string lengths the assignment cast applies, which
			 * refuses values that no longer fit; an explicit cast would
			 * silently cut staged data.
			 */
			bool		strings = strncmp(old_types[i], "varchar(", 8) == 0 &&
				strncmp(a->sqltype, "varchar(", 8) == 0;

			run_sql(psprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s%s%s%s%s", qualified,
							 col, a->sqltype, strings ? "" : " USING ",
							 strings ? "" : col, strings ? "" : "::",
							 strings ? "" : a->sqltype));
		}
	}
}

static Datum
text_array(List *names)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(names), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, names)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

static Datum
text_or_null(const char *s, char *nulls, int i)
{
	nulls[i] = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* Replace the registry rows of the schema. */
static void
write_registry(ParsedSchema *ps, text *source)
{
	Oid			schema_types[10] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID,
	NAMEOID, NAMEOID, BOOLOID, BOOLOID, TEXTOID};
	Datum		v[13];
	char		n[13];
	Oid			attr_types[13] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, NAMEOID,
		TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, BOOLOID, TEXTOID};
	Oid			key_types[6] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, BOOLOID,
	TEXTARRAYOID};
	ListCell   *lc;
	int			pos;
	int			pass;

	memset(n, ' ', sizeof(n));
	v[0] = CStringGetTextDatum(ps->namespace);
	v[1] = CStringGetTextDatum(ps->name);
	v[2] = text_or_null(ps->label, n, 2);
	v[3] = text_or_null(ps->desc, n, 3);
	v[4] = DirectFunctionCall1(namein, CStringGetDatum(sql_name(ps->namespace)));
	v[5] = DirectFunctionCall1(namein, CStringGetDatum(ps->sql_table));
	n[6] = ps->staging_table ? ' ' : 'n';
	v[6] = ps->staging_table ?
		DirectFunctionCall1(namein, CStringGetDatum(ps->staging_table)) : (Datum) 0;
	v[7] = BoolGetDatum(ps->autopk);
	v[8] = BoolGetDatum(ps->autouuid);
	v[9] = PointerGetDatum(source);
	SPI_execute_with_args("INSERT INTO campaign.schemas AS s (namespace, name, label, description,"
						  " sql_schema, sql_table, staging_table, autopk, autouuid, source)"
						  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::xml)"
						  " ON CONFLICT (namespace, name) DO UPDATE SET"
						  " label = EXCLUDED.label, description = EXCLUDED.description,"
						  " sql_schema = EXCLUDED.sql_schema, sql_table = EXCLUDED.sql_table,"
						  " staging_table = EXCLUDED.staging_table, autopk = EXCLUDED.autopk,"
						  " autouuid = EXCLUDED.autouuid, source = EXCLUDED.source,"
						  " registered_at = now()",
						  10, schema_types, v, n, false, 0);

	SPI_execute_with_args("DELETE FROM campaign.attributes WHERE namespace = $1 AND name = $2",
						  2, schema_types, v, NULL, false, 0);
	SPI_execute_with_args("DELETE FROM campaign.keys WHERE namespace = $1 AND name = $2",
						  2, schema_types, v, NULL, false, 0);
	SPI_execute_with_args("DELETE FROM campaign.indexes WHERE namespace = $1 AND name = $2",
						  2, schema_types, v, NULL, false, 0);

	pos = 0;
	foreach(lc, ps->attributes)
	{
		SchemaAttribute *a = lfirst(lc);

		memset(n, ' ', sizeof(n));
		v[2] = Int32GetDatum(++pos);
		v[3] = CStringGetTextDatum(a->name);
		v[4] = DirectFunctionCall1(namein, CStringGetDatum(a->sqlname));
		v[5] = CStringGetTextDatum(a->type);
		n[6] = a->length ? ' ' : 'n';
		v[6] = Int32GetDatum(a->length);
		v[7] = CStringGetTextDatum(a->sqltype);
		v[8] = text_or_null(a->label, n, 8);
		v[9] = text_or_null(a->desc, n, 9);
		v[10] = BoolGetDatum(a->required);
		v[11] = BoolGetDatum(a->not_null);
		v[12] = text_or_null(a->default_value, n, 12);
		SPI_execute_with_args("INSERT INTO campaign.attributes (namespace, name, position,"
							  " attribute, sql_name, type, length, sql_type, label, description,"
							  " required, not_null, default_value)"
							  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
							  13, attr_types, v, n, false, 0);
	}

	memset(n, ' ', sizeof(n));
	for (pass = 0; pass < 2; pass++)
	{
		List	   *list = pass == 0 ? ps->keys : ps->indexes;

		pos = 0;
		foreach(lc, list)
		{
			SchemaKey  *k = lfirst(lc);

			v[2] = CStringGetTextDatum(k->name);
			v[3] = Int32GetDatum(++pos);
			v[4] = BoolGetDatum(k->primary);
			v[5] = text_array(k->fields);
			SPI_execute_with_args(pass == 0 ?
								  "INSERT INTO campaign.keys (namespace, name, key_name, position,"
								  " is_primary, fields) VALUES ($1, $2, $3, $4, $5, $6)" :
								  "INSERT INTO campaign.indexes (namespace, name, index_name, position,"
								  " is_unique, fields) VALUES ($1, $2, $3, $4, $5, $6)",
								  6, key_types, v, NULL, false, 0);
		}
	}
}

/*
 * campaign.register_schema(source text, force boolean) returns text
 *		Register or re-register a source schema; returns "namespace:name".
 */
Datum
register_schema(PG_FUNCTION_ARGS)
{
	text	   *source = PG_GETARG_TEXT_PP(0);
	bool		force = PG_GETARG_BOOL(1);
	ParsedSchema *ps = NULL;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char	   *old_qualified = NULL;
	char	   *new_qualified = NULL;
	int64		replicated_upto = 0;
	int			nold = 0;
	char	  **old_names = NULL;
	char	  **old_sqlnames = NULL;
	char	  **old_types = NULL;
	int			i;
	Oid			relid;

	campaign_with_document(source, "source schema", PG_XML_STRICTNESS_ALL,
						   parse_schema, &ps);

	SPI_connect();
	args[0] = CStringGetTextDatum(ps->namespace);
	args[1] = CStringGetTextDatum(ps->name);

	/* What was registered before, locked against concurrent registration. */
	SPI_execute_with_args("SELECT quote_ident(sql_schema) || '.' || quote_ident(staging_table),"
						  " replicated_upto FROM campaign.schemas"
						  " WHERE namespace = $1 AND name = $2 FOR UPDATE",
						  2, argtypes, args, NULL, false, 0);
	if (SPI_processed > 0)
	{
		bool		isnull;

		old_qualified = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		replicated_upto = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 2,
													  &isnull));
		SPI_execute_with_args("SELECT attribute, sql_name, sql_type FROM campaign.attributes"
							  " WHERE namespace = $1 AND name = $2 ORDER BY position",
							  2, argtypes, args, NULL, false, 0);
		nold = SPI_processed;
		old_names = palloc(sizeof(char *) * Max(nold, 1));
		old_sqlnames = palloc(sizeof(char *) * Max(nold, 1));
		old_types = palloc(sizeof(char *) * Max(nold, 1));
		for (i = 0; i < nold; i++)
		{
			old_names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			old_sqlnames[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
			old_types[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		}
	}

	if (ps->staging_table)
		new_qualified = psprintf("%s.%s", quote_identifier(sql_name(ps->namespace)),
								 quote_identifier(ps->staging_table));

	/* A staging table dropped by hand is created again. */
	if (old_qualified && !table_exists(old_qualified))
		old_qualified = NULL;

	if (old_qualified && !ps->staging_table)
	{
		refuse_if_unreplicated(old_qualified, NULL, replicated_upto, force,
							   psprintf("staging table %s", old_qualified));
		run_sql(psprintf("DROP TABLE %s", old_qualified));
	}
	else if (old_qualified && ps->staging_table)
	{
		if (strcmp(old_qualified, new_qualified) != 0)
			run_sql(psprintf("ALTER TABLE %s RENAME TO %s", old_qualified,
							 quote_identifier(ps->staging_table)));
		evolve_staging_table(ps, new_qualified, nold, old_names, old_sqlnames,
							 old_types, replicated_upto, force);
	}
	else if (ps->staging_table)
		create_staging_table(ps, new_qualified, replicated_upto);

	if (ps->staging_table)
	{
		ListCell   *lc;

		comment_on(psprintf("TABLE %s", new_qualified),
				   psprintf("Staging table of %s:%s%s%s", ps->namespace, ps->name,
							ps->label ? " - " : "", ps->label ? ps->label : ""),
				   ps->desc);
		foreach(lc, ps->attributes)
		{
			SchemaAttribute *a = lfirst(lc);

			comment_on(psprintf("COLUMN %s.%s", new_qualified,
								quote_identifier(a->sqlname)),
					   a->label, a->desc);
		}
	}

	write_registry(ps, source);
	SPI_finish();

	if (ps->staging_table)
	{
		relid = RangeVarGetRelid(makeRangeVar(sql_name(ps->namespace),
											  ps->staging_table, -1),
								 NoLock, false);
		CacheInvalidateRelcacheByRelid(relid);
	}

	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s:%s", ps->namespace, ps->name)));
}
