/*-------------------------------------------------------------------------
 *
 * xmldoc.c
 *	  Safe parsing of the XML documents callers hand us, with libxml2.
 *
 * Every document (source schemas, ingested records, SOAP envelopes) goes
 * through campaign_parse_xml(), which parses with PostgreSQL's own libxml2
 * error handling (pg_xml_init / xml_ereport) and these limits:
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
 * Parse a whole document.  "what" names it in error messages ("record
 * document", "source schema").  The caller owns the returned document and
 * must free it with xmlFreeDoc, also on error (PG_TRY around its use).
 */
xmlDocPtr
campaign_parse_xml(PgXmlErrorContext *xcxt, const char *data, int len,
				   const char *what)
{
	const char *utf8;
	xmlParserCtxtPtr ctxt;
	xmlDocPtr	doc;
	bool		doctype;

	utf8 = (const char *) pg_do_encoding_conversion((unsigned char *) data, len,
													GetDatabaseEncoding(),
													PG_UTF8);
	if (utf8 != data)
		len = strlen(utf8);

	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL || pg_xml_error_occurred(xcxt))
		xml_ereport(xcxt, ERROR, ERRCODE_OUT_OF_MEMORY,
					"could not allocate XML parser context");
	ctxt->sax->internalSubset = refuse_doctype;
	ctxt->_private = NULL;

	doc = xmlCtxtReadMemory(ctxt, utf8, len, NULL, "UTF-8",
							XML_PARSE_NONET | XML_PARSE_NOCDATA);
	doctype = (ctxt->_private != NULL);
	xmlFreeParserCtxt(ctxt);

	if (doctype)
	{
		if (doc)
			xmlFreeDoc(doc);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_DOCUMENT),
				 errmsg("%s must not contain a document type declaration", what),
				 errdetail("DOCTYPE, DTDs and entity declarations are refused for safety.")));
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
bool
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
