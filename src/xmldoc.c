/*-------------------------------------------------------------------------
 *
 * xmldoc.c
 *	  Safe parsing of the XML documents callers hand us, with libxml2.
 *
 * Every document goes through campaign_parse_xml() (a whole tree: source
 * schemas, SOAP envelopes) or campaign_reader_open() / campaign_reader_read()
 * (a stream: ingest documents, whose collections may hold 100,000 records and
 * must neither be built whole in memory nor freed node by node afterwards).
 * Both parse with PostgreSQL's own libxml2 error handling (pg_xml_init /
 * xml_ereport) and these limits:
 *	  - no network access (XML_PARSE_NONET), no external DTD, no entity
 *	    substitution;
 *	  - a document type declaration stops the parser at once: an internal
 *	    subset is where entity bombs (billion laughs) and external entities
 *	    (XXE) are declared, and no Campaign payload needs one;
 *	  - nesting depth is bounded by libxml2's default limit (XML_PARSE_HUGE
 *	    is never set), and our callers accept only the few levels their
 *	    formats have.
 * The document is parsed as UTF-8 after conversion from the server encoding;
 * strings read back are converted to the server encoding.
 *
 * Names found in documents are checked with campaign_valid_name() before
 * they are compared with the registry; no name from a document is ever put
 * into SQL unless the registry knows it.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "mb/pg_wchar.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlreader.h>

#define PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOCDATA)

static void
refuse_doctype_error(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_XML_DOCUMENT),
			 errmsg("%s must not contain a document type declaration", what),
			 errdetail("DOCTYPE, DTDs and entity declarations are refused for safety.")));
}

/*
 * The document as UTF-8 (it is parsed as such); *len is updated.  A text
 * argument is already in the server encoding, whatever its XML declaration
 * says, so the declaration is skipped (as PostgreSQL's xml type ignores
 * its encoding): libxml2 would otherwise decode the bytes by it.
 */
static const char *
utf8_document(const char *data, int *len)
{
	const char *utf8 = (const char *) pg_do_encoding_conversion((unsigned char *) data,
																*len, GetDatabaseEncoding(),
																PG_UTF8);
	const char *end;

	if (utf8 != data)
		*len = strlen(utf8);
	if (*len >= 3 && memcmp(utf8, "\xEF\xBB\xBF", 3) == 0)
	{
		utf8 += 3;
		*len -= 3;
	}
	if (*len >= 6 && memcmp(utf8, "<?xml", 5) == 0 &&
		(utf8[5] == ' ' || utf8[5] == '\t' || utf8[5] == '\r' || utf8[5] == '\n') &&
		(end = memmem(utf8, *len, "?>", 2)) != NULL)
	{
		*len -= end + 2 - utf8;
		utf8 = end + 2;
	}
	return utf8;
}

/*
 * SAX hook called when the parser meets <!DOCTYPE ...>: stop there.
 */
static void
refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *ExternalID,
			   const xmlChar *SystemID)
{
	xmlParserCtxtPtr ctxt = (xmlParserCtxtPtr) ctx;

	ctxt->_private = (void *) "doctype";
	xmlStopParser(ctxt);
}

/*
 * Did libxml2 report nothing at all while campaign_parse_xml() last
 * parsed, not even what the strictness of the caller's pg_xml_init()
 * ignores (a namespace flaw)?  The document would then parse as it is with
 * any strictness: the SOAP router stages the record of such an envelope
 * without parsing it again (soap.c).
 */
bool		campaign_parse_flawless = false;

/* PostgreSQL's handler, which note_report() passes every report on to. */
static xmlStructuredErrorFunc pg_error_handler;

static void
note_report(void *ctx, xmlErrorPtr error)
{
	campaign_parse_flawless = false;
	pg_error_handler(ctx, error);
}

/*
 * Parse a whole document.  "what" names it in error messages ("record
 * document", "source schema").  The caller owns the returned document and
 * must free it with xmlFreeDoc, also on error (PG_TRY around its use).
 * Sets campaign_parse_flawless.
 */
xmlDocPtr
campaign_parse_xml(PgXmlErrorContext *xcxt, const char *data, int len,
				   const char *what)
{
	const char *utf8;
	xmlParserCtxtPtr ctxt;
	xmlDocPtr	doc;
	bool		doctype;

	utf8 = utf8_document(data, &len);

	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL || pg_xml_error_occurred(xcxt))
		xml_ereport(xcxt, ERROR, ERRCODE_OUT_OF_MEMORY,
					"could not allocate XML parser context");
	ctxt->sax->internalSubset = refuse_doctype;
	ctxt->_private = NULL;

	/* PostgreSQL's handler reports no error by longjmp */
	pg_error_handler = xmlStructuredError;
	campaign_parse_flawless = true;
	xmlSetStructuredErrorFunc(xmlStructuredErrorContext, note_report);
	doc = xmlCtxtReadMemory(ctxt, utf8, len, NULL, "UTF-8", PARSE_OPTIONS);
	xmlSetStructuredErrorFunc(xmlStructuredErrorContext, pg_error_handler);
	doctype = (ctxt->_private != NULL);
	xmlFreeParserCtxt(ctxt);

	if (doctype)
	{
		if (doc)
			xmlFreeDoc(doc);
		refuse_doctype_error(what);
	}
	if (doc == NULL || pg_xml_error_occurred(xcxt))
	{
		if (doc)
			xmlFreeDoc(doc);
		xml_ereport(xcxt, ERROR, ERRCODE_INVALID_XML_DOCUMENT,
					psprintf("%s is not well-formed XML", what));
	}
	if (xmlDocGetRootElement(doc) == NULL)
	{
		xmlFreeDoc(doc);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_DOCUMENT),
				 errmsg("%s has no root element", what)));
	}
	return doc;
}

/*
 * Does the prolog (what comes before the root element: XML declaration,
 * comments, processing instructions) hold a document type declaration?  It
 * may stand nowhere else, and a streaming reader would parse ahead of it
 * before reporting it, so it is looked for before parsing.
 */
static bool
prolog_has_doctype(const char *p, const char *end)
{
	for (;;)
	{
		const char *close;

		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			p++;
		if (end - p >= 4 && memcmp(p, "<!--", 4) == 0)
			close = "-->";
		else if (end - p >= 2 && memcmp(p, "<?", 2) == 0)
			close = "?>";
		else
			return end - p >= 9 && memcmp(p, "<!DOCTYPE", 9) == 0;
		p = memmem(p + 2, end - p - 2, close, strlen(close));
		if (p == NULL)
			return false;		/* unterminated: the parser says so */
		p += strlen(close);
	}
}

/*
 * A streaming reader over the document, positioned on its root element.
 * The caller owns the reader and must free it with xmlFreeTextReader, also
 * on error (PG_TRY around its use); *reader is set before anything can fail.
 */
void
campaign_reader_open(PgXmlErrorContext *xcxt, const char *data, int len,
					 const char *what, xmlTextReaderPtr *reader)
{
	const char *utf8 = utf8_document(data, &len);

	if (prolog_has_doctype(utf8, utf8 + len))
		refuse_doctype_error(what);
	*reader = xmlReaderForMemory(utf8, len, NULL, "UTF-8", PARSE_OPTIONS);
	if (*reader == NULL || pg_xml_error_occurred(xcxt))
		xml_ereport(xcxt, ERROR, ERRCODE_OUT_OF_MEMORY,
					"could not allocate XML reader");
	for (;;)
	{
		if (!campaign_reader_read(xcxt, *reader, what))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_XML_DOCUMENT),
					 errmsg("%s has no root element", what)));
		if (xmlTextReaderNodeType(*reader) == XML_READER_TYPE_ELEMENT)
			return;
	}
}

/*
 * Move the reader to the next node; false at the end of the document.
 * Malformed XML and document type declarations are errors.
 */
bool
campaign_reader_read(PgXmlErrorContext *xcxt, xmlTextReaderPtr reader,
					 const char *what)
{
	int			ret = xmlTextReaderRead(reader);

	if (ret < 0 || pg_xml_error_occurred(xcxt))
		xml_ereport(xcxt, ERROR, ERRCODE_INVALID_XML_DOCUMENT,
					psprintf("%s is not well-formed XML", what));
	if (ret == 1 && xmlTextReaderNodeType(reader) == XML_READER_TYPE_DOCUMENT_TYPE)
		refuse_doctype_error(what);
	return ret == 1;
}

/*
 * The reader's current element as a tree node, with its whole subtree; the
 * node lives until the reader moves past it.
 */
xmlNodePtr
campaign_reader_expand(PgXmlErrorContext *xcxt, xmlTextReaderPtr reader,
					   const char *what)
{
	xmlNodePtr	node = xmlTextReaderExpand(reader);

	if (node == NULL || pg_xml_error_occurred(xcxt))
		xml_ereport(xcxt, ERROR, ERRCODE_INVALID_XML_DOCUMENT,
					psprintf("%s is not well-formed XML", what));
	return node;
}

/* Skip the current node's subtree; false at the end of the document. */
bool
campaign_reader_skip(PgXmlErrorContext *xcxt, xmlTextReaderPtr reader,
					 const char *what)
{
	int			ret = xmlTextReaderNext(reader);

	if (ret < 0 || pg_xml_error_occurred(xcxt))
		xml_ereport(xcxt, ERROR, ERRCODE_INVALID_XML_DOCUMENT,
					psprintf("%s is not well-formed XML", what));
	return ret == 1;
}

/*
 * Parse the document "source" (text or xml) as a tree and call fn(doc, arg)
 * on it; the document and libxml2's error handling are released on every
 * path, errors included.  With PG_XML_STRICTNESS_WELLFORMED, namespace
 * errors are not errors (SOAP clients declare namespaces such as
 * "urn:xtk:persist|xtk:session", which are not valid URIs); an unbound
 * prefix then leaves its element in no namespace.
 */
void
campaign_with_document(text *source, const char *what,
					   PgXmlStrictness strictness,
					   void (*fn) (xmlDocPtr doc, void *arg), void *arg)
{
	PgXmlErrorContext *xcxt = pg_xml_init(strictness);
	xmlDocPtr	volatile doc = NULL;

	PG_TRY();
	{
		doc = campaign_parse_xml(xcxt, VARDATA_ANY(source),
								 VARSIZE_ANY_EXHDR(source), what);
		fn(doc, arg);
	}
	PG_CATCH();
	{
		if (doc)
			xmlFreeDoc(doc);
		pg_xml_done(xcxt, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	xmlFreeDoc(doc);
	pg_xml_done(xcxt, false);
}

/* Convert a libxml2 UTF-8 string to a palloc'd server-encoding string. */
static char *
from_utf8(const xmlChar *s)
{
	char	   *converted = pg_any_to_server((const char *) s,
											 strlen((const char *) s), PG_UTF8);

	return converted == (const char *) s ? pstrdup(converted) : converted;
}

/*
 * Value of an attribute node, entity references resolved to text, in the
 * server encoding.  The common case (one text child) costs one copy.
 */
char *
campaign_xml_attr(xmlAttrPtr attr)
{
	xmlChar    *joined;
	char	   *result;

	if (attr->children == NULL)
		return pstrdup("");
	if (attr->children->type == XML_TEXT_NODE && attr->children->next == NULL)
		return from_utf8(attr->children->content);

	joined = xmlNodeListGetString(attr->doc, attr->children, 1);
	result = from_utf8(joined ? joined : (const xmlChar *) "");
	xmlFree(joined);
	return result;
}

/*
 * Text content of an element that may hold only text (CDATA is merged into
 * text by XML_PARSE_NOCDATA).  Returns NULL when the element holds anything
 * else, so the caller can report where.
 */
char *
campaign_xml_text(xmlNodePtr node)
{
	StringInfoData buf;
	xmlNodePtr	child;

	if (node->children == NULL)
		return pstrdup("");
	if (node->children->type == XML_TEXT_NODE && node->children->next == NULL)
		return from_utf8(node->children->content);

	initStringInfo(&buf);
	for (child = node->children; child; child = child->next)
	{
		char	   *part;

		if (child->type == XML_COMMENT_NODE || child->type == XML_PI_NODE)
			continue;
		if (child->type != XML_TEXT_NODE)
			return NULL;
		part = from_utf8(child->content);
		appendStringInfoString(&buf, part);
		pfree(part);
	}
	return buf.data;
}

/*
 * A value shortened for quoting in an error message: at most
 * CAMPAIGN_QUOTE_MAX bytes (whole characters), "..." when cut.
 */
char *
campaign_shorten(const char *value)
{
	int			len = strlen(value);
	int			cut;

	if (len <= CAMPAIGN_QUOTE_MAX)
		return pstrdup(value);
	cut = pg_mbcliplen(value, len, CAMPAIGN_QUOTE_MAX);
	return psprintf("%.*s...", cut, value);
}

/*
 * Campaign names (namespaces, schemas, attributes, SQL overrides): a letter
 * or underscore, then letters, digits or underscores, at most
 * CAMPAIGN_NAME_MAX bytes.
 */
static bool
campaign_valid_name(const char *name)
{
	const char *p;

	if (name == NULL || name[0] == '\0' || strlen(name) > CAMPAIGN_NAME_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') ||
		  (name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_'))
		return false;
	for (p = name + 1; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* Raise the error for an invalid name; "what" says which name it is. */
void
campaign_check_name(const char *name, const char *what)
{
	if (!campaign_valid_name(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid %s \"%s\"", what,
						name ? campaign_shorten(name) : ""),
				 errdetail("Names start with a letter or underscore, contain only letters, digits and underscores, and have at most %d bytes.",
						   CAMPAIGN_NAME_MAX)));
}
