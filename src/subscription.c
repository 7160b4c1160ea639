/*-------------------------------------------------------------------------
 *
 * subscription.c
 *	  The staging half of Campaign's subscription APIs (nms:subscription
 *	  Subscribe / Unsubscribe).
 *
 * In FFDA, subscriptions go through staging and are asynchronous: a call
 * stages its changes and returns at once; the worker's subscription pass,
 * every campaign.subscription_interval, replicates nms:recipient and then
 * nms:subscriptionRcp to the cloud, in staging order, so a subscribe
 * followed by an unsubscribe within one interval ends unsubscribed.
 *
 * campaign.subscribe() / unsubscribe() check the caller's ingest rights on
 * the staging tables (rights.c), then their SQL bodies
 * (subscribe_unchecked(), SECURITY DEFINER) check the service and the
 * recipient and call campaign.stage_subscription() here,
 * which turns the caller's recipient element into staged changes through
 * the ordinary ingest path:
 *	  - with create, the recipient itself: <recipient .../> becomes
 *	    <recipientStg ... xtkschema="nms:recipientStg"/>, insertOrUpdate on
 *	    its key;
 *	  - the subscription: <subscriptionRcpStg _key="@email,@service"
 *	    email= service= .../>, insertOrUpdate (subscribe) or delete
 *	    (unsubscribe).
 * Documents are built with libxml2, which escapes the values.  The request
 * id returned is the _stg_seq of the staged subscription change.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

#include <libxml/parser.h>

PG_FUNCTION_INFO_V1(stage_subscription);

/*
 * Serialize a document and stage it as xtk_ingest_ext() does, without
 * taking an xtk_ingest_ext token: the call took its own API's.
 */
static void
ingest_ext_document(xmlDocPtr doc)
{
	xmlChar    *buf = NULL;
	int			len = 0;
	text	   *t;

	xmlDocDumpMemory(doc, &buf, &len);
	if (buf == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not serialize a staging document")));
	t = cstring_to_text_with_len((const char *) buf, len);
	xmlFree(buf);
	ingest_document(t, true);
}

/* The recipient element as a staged nms:recipient change. */
static xmlDocPtr
recipient_change(xmlDocPtr recipient)
{
	xmlDocPtr	doc = xmlCopyDoc(recipient, 1);
	xmlNodePtr	root = xmlDocGetRootElement(doc);

	xmlNodeSetName(root, (const xmlChar *) "recipientStg");
	xmlSetProp(root, (const xmlChar *) "xtkschema", (const xmlChar *) "nms:recipientStg");
	if (!xmlHasProp(root, (const xmlChar *) "_key"))
		xmlSetProp(root, (const xmlChar *) "_key", (const xmlChar *) "@email");
	xmlUnsetProp(root, (const xmlChar *) "_operation");
	return doc;
}

/* The staged nms:subscriptionRcp change of email and service. */
static xmlDocPtr
subscription_change(const char *email, const char *service, bool subscribe)
{
	xmlDocPtr	doc = xmlNewDoc((const xmlChar *) "1.0");
	xmlNodePtr	root = xmlNewNode(NULL, (const xmlChar *) "subscriptionRcpStg");
	char	   *now = campaign_datetime_out(GetCurrentTransactionStartTimestamp());

	xmlDocSetRootElement(doc, root);
	xmlNewProp(root, (const xmlChar *) "_key", (const xmlChar *) "@email,@service");
	xmlNewProp(root, (const xmlChar *) "_operation",
			   (const xmlChar *) (subscribe ? "insertOrUpdate" : "delete"));
	xmlNewProp(root, (const xmlChar *) "email", (const xmlChar *) email);
	xmlNewProp(root, (const xmlChar *) "service", (const xmlChar *) service);
	if (subscribe)
		xmlNewProp(root, (const xmlChar *) "created", (const xmlChar *) now);
	xmlNewProp(root, (const xmlChar *) "xtkschema", (const xmlChar *) "nms:subscriptionRcpStg");
	return doc;
}

/*
 * campaign.stage_subscription(service text, recipient text, email text,
 *							   subscribe boolean, create boolean) returns bigint
 *		Stage the changes of one subscribe / unsubscribe call.  The SQL
 *		wrappers have checked the service and found the recipient's email.
 */
Datum
stage_subscription(PG_FUNCTION_ARGS)
{
	char	   *service = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *recipient = PG_GETARG_TEXT_PP(1);
	char	   *email = text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool		subscribe = PG_GETARG_BOOL(3);
	bool		create = PG_GETARG_BOOL(4);
	PgXmlErrorContext *xcxt = pg_xml_init(PG_XML_STRICTNESS_ALL);
	xmlDocPtr	volatile parsed = NULL;
	xmlDocPtr	volatile change = NULL;
	StagingSchema *schema;

	PG_TRY();
	{
		if (create)
		{
			parsed = campaign_parse_xml(xcxt, VARDATA_ANY(recipient),
										VARSIZE_ANY_EXHDR(recipient), "recipient");
			change = recipient_change(parsed);
			ingest_ext_document(change);
			xmlFreeDoc(change);
			change = NULL;
		}
		change = subscription_change(email, service, subscribe);
		ingest_ext_document(change);
	}
	PG_CATCH();
	{
		if (parsed)
			xmlFreeDoc(parsed);
		if (change)
			xmlFreeDoc(change);
		pg_xml_done(xcxt, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (parsed)
		xmlFreeDoc(parsed);
	xmlFreeDoc(change);
	pg_xml_done(xcxt, false);

	schema = staging_schema_lookup("nms:subscriptionRcpStg");
	PG_RETURN_DATUM(DirectFunctionCall1(currval_oid, ObjectIdGetDatum(schema->seqid)));
}
