/*-------------------------------------------------------------------------
 *
 * record.c
 *	  One XML record of an ingest document -> the values of a staging row.
 *
 * A record is an element named after the staging schema
 * (<sampleTableStg .../>).  Its values come as attributes or as child
 * elements holding text (memo fields, CDATA allowed); the reserved
 * attributes are xtkschema, _key and _operation.  Every name is looked up in
 * the registered schema; an unknown one is an error, so no name from the
 * document ever reaches SQL.
 *
 * Values are converted by value.c (fixed rules for the types whose input
 * functions depend on the session's settings, the type's input function
 * for the others), after our own checks of string length and empty values.  An error context callback
 * names the record (its index in a collection) and the attribute, so errors
 * raised by PostgreSQL's input functions say where they come from too.
 *
 * The builder fills the attribute columns and _operation, _key and _carried;
 * the caller adds _stg_seq, _uuid and _lastmodified.  _carried (the
 * attributes a change carried, so that an update never nulls absent ones)
 * and _key are text[] values that repeat from record to record, so the last
 * one built is reused when the next record has the same set.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "catalog/pg_type.h"
#include "record.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "mb/pg_wchar.h"

const char *const staged_operation_names[] = {
	"insert", "insertOrUpdate", "update", "delete"
};

/* Error context: which record and attribute is being read. */
static void
record_error_context(void *arg)
{
	RecordBuilder *b = (RecordBuilder *) arg;

	if (b->collection)
		errcontext("record %d of the %s collection%s%s%s", b->recno,
				   b->schema->xtkschema,
				   b->cur_attr ? ", attribute \"" : "",
				   b->cur_attr ? b->cur_attr : "",
				   b->cur_attr ? "\"" : "");
	else
		errcontext("%s record%s%s%s", b->schema->xtkschema,
				   b->cur_attr ? ", attribute \"" : "",
				   b->cur_attr ? b->cur_attr : "",
				   b->cur_attr ? "\"" : "");
}

void
record_builder_init(RecordBuilder *b, StagingSchema *schema, bool ext)
{
	int			i;

	memset(b, 0, sizeof(RecordBuilder));
	b->schema = schema;
	b->ext = ext;
	b->cxt = CurrentMemoryContext;
	b->carried = palloc0(sizeof(bool) * Max(schema->natts, 1));
	b->last_carried = palloc0(sizeof(bool) * Max(schema->natts, 1));
	b->cvalues = palloc(sizeof(char *) * Max(schema->natts, 1));
	for (i = 0; i < lengthof(b->op_datums); i++)
		b->op_datums[i] = CStringGetTextDatum(staged_operation_names[i]);
	b->errcb.callback = record_error_context;
	b->errcb.arg = b;
}

/* Push/pop the error context around the reading of a document. */
void
record_builder_enter(RecordBuilder *b)
{
	b->errcb.previous = error_context_stack;
	error_context_stack = &b->errcb;
}

void
record_builder_leave(RecordBuilder *b)
{
	error_context_stack = b->errcb.previous;
}

static StagedOperation
parse_operation(RecordBuilder *b, const char *op)
{
	int			i;

	for (i = 0; i < lengthof(staged_operation_names); i++)
		if (strcmp(op, staged_operation_names[i]) == 0)
			break;
	if (i == lengthof(staged_operation_names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid _operation \"%s\"", campaign_shorten(op)),
				 errhint("Use insertOrUpdate, insert, update or delete.")));
	if (!b->ext && i != STG_OP_INSERT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("xtk_ingest only inserts, _operation \"%s\" is not allowed",
						op),
				 errhint("Use xtk_ingest_ext() to update or delete.")));
	return (StagedOperation) i;
}

/*
 * The _key value: a comma-separated list of "@attribute" XPaths, each naming
 * an attribute of the schema.  Returns the text[] of attribute names.
 */
static Datum
parse_key(RecordBuilder *b, const char *raw)
{
	char	   *copy;
	char	   *tok;
	char	   *save;
	Datum	   *names;
	int			n = 0;
	MemoryContext old;

	if (b->last_key_raw && strcmp(raw, b->last_key_raw) == 0)
		return b->last_key;

	old = MemoryContextSwitchTo(b->cxt);
	copy = pstrdup(raw);
	names = palloc(sizeof(Datum) * (strlen(raw) / 2 + 1));
	b->key_atts = palloc(sizeof(int) * (strlen(raw) / 2 + 1));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		CampaignAttribute *a;

		while (*tok == ' ' || *tok == '\t' || *tok == '\n' || *tok == '\r')
			tok++;
		if (tok[0] == '@')
		{
			char	   *end = tok + strlen(tok);

			while (end > tok && (end[-1] == ' ' || end[-1] == '\t' ||
								 end[-1] == '\n' || end[-1] == '\r'))
				*--end = '\0';
		}
		a = (tok[0] == '@') ? staging_schema_attribute(b->schema, tok + 1) : NULL;
		if (a == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("_key \"%s\" names no attribute of schema \"%s\"",
							campaign_shorten(tok), b->schema->xtkschema),
					 errhint("A key is a comma-separated list of attribute XPaths such as \"@id\" or \"@email,@service\".")));
		b->key_atts[n] = a - b->schema->atts;
		names[n++] = CStringGetTextDatum(a->name);
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("_key \"%s\" is empty", campaign_shorten(raw))));

	b->key_natts = n;
	b->last_key_raw = pstrdup(raw);
	b->last_key = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false,
												  TYPALIGN_INT));
	MemoryContextSwitchTo(old);
	return b->last_key;
}

/* Convert one value with its attribute's type; sets *isnull. */
static Datum
convert_value(RecordBuilder *b, CampaignAttribute *a, const char *value,
			  bool *isnull)
{
	*isnull = false;
	if (a->typid == VARCHAROID || a->typid == TEXTOID)
	{
		int			len = strlen(value);

		if (a->length > 0 && len > a->length &&
			pg_mbstrlen_with_len(value, len) > a->length)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("value too long for attribute \"%s\" (string, length %d): \"%s\"",
							a->name, a->length, campaign_shorten(value))));
		return PointerGetDatum(cstring_to_text_with_len(value, len));
	}
	if (value[0] == '\0')
	{
		if (a->not_null)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("attribute \"%s\" is notNull and cannot be empty",
							a->name)));
		*isnull = true;
		return (Datum) 0;
	}
	return campaign_value_in(a->name, a->type, a->typid, &a->infunc,
							 a->typioparam, value);
}

/* Record the value of attribute "name" found in the document. */
static void
take_value(RecordBuilder *b, const char *name, char *value)
{
	CampaignAttribute *a = staging_schema_attribute(b->schema, name);
	int			idx;

	if (a == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("attribute \"%s\" is not defined in schema \"%s\"",
						campaign_shorten(name), b->schema->xtkschema),
				 errhint("Register the attribute with campaign.register_schema().")));
	idx = a - b->schema->atts;
	if (b->carried[idx])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("attribute \"%s\" is given more than once", a->name)));
	b->carried[idx] = true;
	b->cvalues[idx] = value;
}

/* Convert what the record carried, apply defaults and checks. */
static void
fill_values(RecordBuilder *b, StagedOperation op, Datum *values, bool *nulls)
{
	StagingSchema *s = b->schema;
	int			i;

	for (i = 0; i < s->natts; i++)
	{
		CampaignAttribute *a = &s->atts[i];
		AttrNumber	col = a->attnum - 1;
		bool		inserting = (op == STG_OP_INSERT);

		if (!b->carried[i] && inserting && a->default_value)
		{
			b->carried[i] = true;
			b->cvalues[i] = a->default_value;
		}
		if (!b->carried[i])
		{
			if (inserting && a->required)
				ereport(ERROR,
						(errcode(ERRCODE_NOT_NULL_VIOLATION),
						 errmsg("required attribute \"%s\" is missing", a->name)));
			nulls[col] = true;
			continue;
		}
		b->cur_attr = a->name;
		if (inserting && a->required && b->cvalues[i][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("required attribute \"%s\" is empty", a->name)));
		values[col] = convert_value(b, a, b->cvalues[i], &nulls[col]);
		b->cur_attr = NULL;
	}
}

/* The _carried text[]: reuse the previous record's when the set is equal. */
static Datum
carried_datum(RecordBuilder *b)
{
	StagingSchema *s = b->schema;
	Datum	   *names;
	int			i,
				n = 0;
	MemoryContext old;

	if (b->have_last_carried &&
		memcmp(b->carried, b->last_carried, sizeof(bool) * s->natts) == 0)
		return b->last_carried_datum;

	old = MemoryContextSwitchTo(b->cxt);
	names = palloc(sizeof(Datum) * Max(s->natts, 1));
	for (i = 0; i < s->natts; i++)
		if (b->carried[i])
			names[n++] = CStringGetTextDatum(s->atts[i].name);
	b->last_carried_datum = PointerGetDatum(construct_array(names, n, TEXTOID,
															-1, false,
															TYPALIGN_INT));
	memcpy(b->last_carried, b->carried, sizeof(bool) * s->natts);
	b->have_last_carried = true;
	MemoryContextSwitchTo(old);
	return b->last_carried_datum;
}

/*
 * Read record element "rec" into values/nulls (the staging row).  Returns
 * true when the record has a reconciliation key.  recno is 1-based.
 */
bool
record_build(RecordBuilder *b, xmlNodePtr rec, int recno,
			 Datum *values, bool *nulls)
{
	StagingSchema *s = b->schema;
	const char *key_raw = b->default_key;
	const char *op_raw = b->default_operation;
	StagedOperation op;
	xmlAttrPtr	attr;
	xmlNodePtr	child;
	int			i;

	b->recno = recno;
	b->cur_attr = NULL;
	memset(b->carried, 0, sizeof(bool) * s->natts);

	if (rec->ns != NULL && rec->ns->prefix != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("element <%s:%s> does not match xtkschema \"%s\"",
						campaign_shorten((const char *) rec->ns->prefix),
						campaign_shorten((const char *) rec->name), s->xtkschema),
				 errhint("Records of schema \"%s\" are <%s> elements, without a namespace prefix.",
						 s->xtkschema, s->element)));
	if (strcmp((const char *) rec->name, s->element) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("element <%s> does not match xtkschema \"%s\"",
						campaign_shorten((const char *) rec->name), s->xtkschema),
				 errhint("Records of schema \"%s\" are <%s> elements.",
						 s->xtkschema, s->element)));

	for (attr = rec->properties; attr; attr = attr->next)
	{
		const char *name = (const char *) attr->name;
		char	   *value = campaign_xml_attr(attr);

		if (attr->ns != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("attribute \"%s:%s\" is not defined in schema \"%s\"",
							campaign_shorten((const char *) attr->ns->prefix),
							campaign_shorten(name), s->xtkschema)));
		if (strcmp(name, "xtkschema") == 0)
		{
			if (strcmp(value, s->xtkschema) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("record xtkschema \"%s\" differs from the document's \"%s\"",
								campaign_shorten(value), s->xtkschema)));
		}
		else if (strcmp(name, "_key") == 0)
			key_raw = value;
		else if (strcmp(name, "_operation") == 0)
			op_raw = value;
		else
			take_value(b, name, value);
	}

	for (child = rec->children; child; child = child->next)
	{
		char	   *text;

		if (child->type == XML_ELEMENT_NODE)
		{
			if (child->ns != NULL && child->ns->prefix != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("element <%s:%s> is not defined in schema \"%s\"",
								campaign_shorten((const char *) child->ns->prefix),
								campaign_shorten((const char *) child->name),
								s->xtkschema)));
			text = campaign_xml_text(child);
			if (text == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_XML_CONTENT),
						 errmsg("element <%s> must contain only text",
								campaign_shorten((const char *) child->name))));
			take_value(b, (const char *) child->name, text);
		}
		else if (child->type == XML_TEXT_NODE)
		{
			const char *p;

			for (p = (const char *) child->content; *p; p++)
				if (!(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_XML_CONTENT),
							 errmsg("record <%s> must not contain text",
									s->element),
							 errhint("Give values as attributes or as child elements named after attributes.")));
		}
	}

	if (op_raw)
		op = parse_operation(b, op_raw);
	else
		op = b->ext ? STG_OP_INSERT_OR_UPDATE : STG_OP_INSERT;
	if (b->ext && key_raw == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("xtk_ingest_ext needs a reconciliation key"),
				 errhint("Add _key=\"@attribute\" naming the key attributes.")));

	for (i = 0; i < s->natts; i++)
		nulls[s->atts[i].attnum - 1] = false;
	fill_values(b, op, values, nulls);

	b->op = op;
	values[s->att_operation - 1] = b->op_datums[op];
	nulls[s->att_operation - 1] = false;
	nulls[s->att_key - 1] = (key_raw == NULL);
	if (key_raw)
	{
		values[s->att_key - 1] = parse_key(b, key_raw);
		for (i = 0; i < b->key_natts; i++)
		{
			CampaignAttribute *a = &s->atts[b->key_atts[i]];

			if (!b->carried[b->key_atts[i]] || nulls[a->attnum - 1])
				ereport(ERROR,
						(errcode(ERRCODE_NOT_NULL_VIOLATION),
						 errmsg("key attribute \"%s\" has no value", a->name),
						 errhint("A record reconciled on _key=\"%s\" must carry a value for each key attribute.",
								 campaign_shorten(key_raw))));
		}
	}
	values[s->att_carried - 1] = carried_datum(b);
	nulls[s->att_carried - 1] = false;
	return key_raw != NULL;
}
