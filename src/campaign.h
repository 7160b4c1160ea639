/*-------------------------------------------------------------------------
 *
 * campaign.h
 *	  Declarations shared by the files of the campaign extension.
 *
 * The extension is split one file per concern:
 *	  campaign.c  _PG_init and the GUCs
 *	  xmldoc.c    safe libxml2 parsing shared by schemas and records
 *	  schema.c    campaign.register_schema(): srcSchema parsing, the registry
 *	              tables and the staging table DDL
 *	  registry.c  per-backend cache of registered staging schemas, read from
 *	              the registry and invalidated through the relcache
 *	  record.c    one XML record -> the values of one staging row
 *	  value.c     one value's text -> its Datum, whatever the settings
 *	  ingest.c    xtk_ingest() / xtk_ingest_ext(): staging writes through
 *	              the executor's multi-insert path
 *	  rights.c    ingest rights per staged schema (privileges on the staging
 *	              table), and the entry points that check the APIs written
 *	              in SQL as their caller
 *	  throttle.c  per-API rate limits: token buckets in shared memory
 *	  soap.c      campaign.soap(): SOAP 1.1 envelopes, sessions, Faults
 *	  http.c      the HTTP endpoint: libmicrohttpd in background workers,
 *	              serving the SOAP router and the REST ingestion API
 *	  failover.c  exactly once across a failover to a streaming standby:
 *	              the standby wait, numbers per timeline, the heal
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPAIGN_H
#define CAMPAIGN_H

#include "postgres.h"

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/spin.h"
#include "utils/xml.h"

#include <libxml/tree.h>
#include <libxml/xmlreader.h>

/* The extension version this library serves (campaign.control). */
#define CAMPAIGN_VERSION "1.1"

/* Longest Campaign name (schema, attribute) we accept: a PostgreSQL name. */
#define CAMPAIGN_NAME_MAX (NAMEDATALEN - 1)

/* Values quoted in error messages are cut to this many bytes. */
#define CAMPAIGN_QUOTE_MAX 40

/*
 * Internal members of every staging table, in column order.  Attribute
 * names beginning with '_' are refused at registration, so these never clash
 * with the attributes of a schema.
 */
#define STG_COL_SEQ			"_stg_seq"
#define STG_COL_UUID		"_uuid"
#define STG_COL_OPERATION	"_operation"
#define STG_COL_KEY			"_key"
#define STG_COL_CARRIED		"_carried"
#define STG_COL_LASTMOD		"_lastmodified"
#define STG_COL_ERROR		"_stg_error"

/* The operations a staged change can carry (values of _operation). */
typedef enum StagedOperation
{
	STG_OP_INSERT,
	STG_OP_INSERT_OR_UPDATE,
	STG_OP_UPDATE,
	STG_OP_DELETE
} StagedOperation;

extern const char *const staged_operation_names[];

/* One attribute of a registered schema, resolved against the staging table. */
typedef struct CampaignAttribute
{
	char	   *name;			/* Campaign attribute name (XML) */
	char	   *sqlname;		/* column of the staging table */
	char	   *type;			/* Campaign type name (string, long, ...) */
	int			length;			/* string length, 0 when not a string */
	bool		required;
	bool		not_null;
	char	   *default_value;	/* NULL when the schema gives none */
	AttrNumber	attnum;			/* column in the staging table */
	Oid			typid;
	char	   *sqltype;		/* SQL type, as in the cloud table */
	FmgrInfo	infunc;			/* the type's input function */
	Oid			typioparam;
	int32		typmod;
	FmgrInfo	outfunc;		/* the type's output function */
} CampaignAttribute;

/* A registered staged schema, as the ingest functions need it. */
typedef struct StagingSchema
{
	char		xtkschema[2 * NAMEDATALEN + 8]; /* "dem:sampleTableStg" */
	char	   *namespace;
	char	   *name;			/* base name, "sampleTable" */
	char	   *element;		/* element name of a record, "sampleTableStg" */
	bool		staged;			/* false: registered without autoStg */
	bool		check_rights;	/* the SQL of 1.1 is installed (rights.c) */
	bool		wakes_worker;	/* an ingest commit wakes the worker: the
								 * schema is deployed and replicated
								 * continuously (or the SQL is 1.0's) */
	Oid			relid;			/* staging table, when staged */
	Oid			seqid;			/* sequence behind _stg_seq */
	int			natts;
	CampaignAttribute *atts;
	AttrNumber	att_seq,
				att_uuid,
				att_operation,
				att_key,
				att_carried,
				att_lastmod;
	bool		valid;			/* cleared by relcache invalidation */
} StagingSchema;

/* A replicate_now() request, in shared memory (see campaign.c). */
#define CAMPAIGN_MAX_REQUESTS 16

typedef struct ReplicationRequest
{
	bool		in_use;			/* slot taken by a requester */
	Oid			dboid;			/* database of the requester */
	bool		done;			/* set by the worker */
	bool		failed;
	char		schema[2 * NAMEDATALEN + 8];	/* "dem:sampleTable" */
	int64		count;			/* changes replicated */
	char		error[256];
} ReplicationRequest;

/*
 * What one backend's ingest transaction claimed of the staging sequences:
 * per staging table, the first _stg_seq it took (0 while it is taking it).
 * The worker reads these to replicate past transactions still open (see
 * campaign.c and replicate.c).
 */
#define CAMPAIGN_CLAIMS_PER_XACT 8

typedef struct IngestClaim
{
	Oid			relid;
	int64		first_seq;
} IngestClaim;

typedef struct IngestSlot
{
	slock_t		mutex;
	int			pid;
	BackendId	backend;		/* the transaction's virtual xid */
	LocalTransactionId lxid;
	int			nclaims;
	IngestClaim claims[CAMPAIGN_CLAIMS_PER_XACT];
} IngestSlot;

/*
 * One replication worker of the pool (campaign.max_workers per database of
 * campaign.database).  Each field has one writer, the worker; readers (the
 * ingest commits that wake workers, the other workers) read them without a
 * lock: a stale value costs at most a spurious wake-up, never a lost one,
 * because a latch once set stays set until its worker starts a new pass.
 */
typedef struct CampaignWorkerSlot
{
	Latch	   *latch;			/* NULL while the worker does not run */
	Oid			dboid;			/* its database, once connected */
	int			pid;
	bool		in_pass;		/* busy: between two waits */
	Oid			serving;		/* staging table it replicates, or InvalidOid */
} CampaignWorkerSlot;

typedef struct CampaignShared
{
	slock_t		mutex;			/* protects everything below */
	ConditionVariable request_cv;	/* broadcast when a request is done */
	ReplicationRequest requests[CAMPAIGN_MAX_REQUESTS];
	IngestSlot	ingest[FLEXIBLE_ARRAY_MEMBER];	/* MaxBackends */
} CampaignShared;

/* campaign.c */
extern char *campaign_database;
extern char *campaign_cloud_server;
extern int	campaign_batch_size;
extern int	campaign_batch_memory;
extern int	campaign_staging_retention;
extern int	campaign_history_retention;
extern int	campaign_naptime;
extern int	campaign_session_timeout;
extern int	campaign_subscription_interval;
extern int	campaign_cloud_timeout;
extern int	campaign_cloud_connect_timeout;
extern int	campaign_max_workers;
extern CampaignShared *campaign_shared;
extern CampaignWorkerSlot *campaign_workers;
extern int	campaign_nworkers;
extern List *campaign_database_list(void);
extern void campaign_require_preload(void);
extern Latch *campaign_worker_latch(int i);
extern void campaign_wake_workers(void);
extern void campaign_note_staged(void);
extern int64 campaign_stage_nextval(Oid relid, Oid seqid);
extern bool campaign_claim_of(VirtualTransactionId vxid, Oid relid, int64 *first_seq);
extern void campaign_start_transaction(void);

/* throttle.c: the APIs that can be rate-limited. */
typedef enum CampaignApi
{
	CAMPAIGN_API_XTK_INGEST,
	CAMPAIGN_API_XTK_INGEST_EXT,
	CAMPAIGN_API_SUBSCRIBE,
	CAMPAIGN_API_UNSUBSCRIBE,
	CAMPAIGN_API_INGESTION_REQUEST,
	CAMPAIGN_API_INGESTION_STATUS,
	CAMPAIGN_API_SOAP,
	CAMPAIGN_API_LOGON_FAILURE,	/* failed Logons (soap.c), limited by default */
	CAMPAIGN_NUM_APIS
} CampaignApi;

/* A call over its API's rate limit: Campaign's HTTP 429. */
#define ERRCODE_CAMPAIGN_RATE_LIMIT MAKE_SQLSTATE('R','L','4','2','9')

extern const char *const campaign_api_names[CAMPAIGN_NUM_APIS];
extern pg_atomic_uint32 *campaign_throttle_enabled;
extern Size campaign_throttle_shmem_size(void);
extern void campaign_throttle_shmem_init(void);
extern double campaign_throttle_retry_after;
extern void campaign_throttle_take(CampaignApi api);
extern void campaign_throttle_check(CampaignApi api);
extern void campaign_throttle_spend(CampaignApi api);

/*
 * Called first thing by each rate-limited API.  Without a limit on the API
 * this is one atomic read; see throttle.c.
 */
static inline void
campaign_throttle(CampaignApi api)
{
	if (campaign_throttle_enabled != NULL &&
		pg_atomic_read_u32(&campaign_throttle_enabled[api]) != 0)
		campaign_throttle_take(api);
}

/* xmldoc.c */
extern bool campaign_parse_flawless;
extern xmlDocPtr campaign_parse_xml(PgXmlErrorContext *xcxt, const char *data,
									int len, const char *what);
extern void campaign_with_document(text *source, const char *what,
								   PgXmlStrictness strictness,
								   void (*fn) (xmlDocPtr doc, void *arg),
								   void *arg);
extern void campaign_reader_open(PgXmlErrorContext *xcxt, const char *data,
								 int len, const char *what,
								 xmlTextReaderPtr *reader);
extern bool campaign_reader_read(PgXmlErrorContext *xcxt,
								 xmlTextReaderPtr reader, const char *what);
extern xmlNodePtr campaign_reader_expand(PgXmlErrorContext *xcxt,
										 xmlTextReaderPtr reader,
										 const char *what);
extern bool campaign_reader_skip(PgXmlErrorContext *xcxt,
								 xmlTextReaderPtr reader, const char *what);
extern char *campaign_xml_attr(xmlAttrPtr attr);
extern char *campaign_xml_text(xmlNodePtr node);
extern char *campaign_shorten(const char *value);
extern void campaign_check_name(const char *name, const char *what);

/* registry.c */
extern StagingSchema *staging_schema_lookup(const char *xtkschema);
extern CampaignAttribute *staging_schema_attribute(StagingSchema *schema,
												   const char *name);

/* rights.c: "any of them", for a role that feeds a schema at all. */
#define CAMPAIGN_RIGHTS_ANY (ACL_INSERT | ACL_UPDATE | ACL_DELETE)

extern AclMode campaign_operation_rights(StagedOperation op, bool keyed);
extern AclMode campaign_ingest_rights(Oid relid, Oid roleid);
extern void campaign_refuse_rights(const char *xtkschema, Oid relid, Oid roleid,
								   AclMode needed, AclMode have) pg_attribute_noreturn();

/* value.c */
extern Datum campaign_value_in(const char *attname, const char *type,
							   Oid typid, FmgrInfo *infunc, Oid typioparam,
							   const char *value);
extern char *campaign_datetime_out(TimestampTz ts);

/* ingest.c */
extern text *ingest_document(text *doc_text, bool ext);
extern text *ingest_element(xmlNodePtr root, bool ext);

/* soap.c: the SOAP router, for campaign.soap() and the HTTP workers */
typedef struct SoapOutcome
{
	bool		fault;			/* the response is a Fault */
	bool		throttled;		/* ... because of a rate limit */
	double		retry_after;	/* seconds until the limit lets a call in */
} SoapOutcome;

extern char *campaign_soap_call(text *envelope, const char *session_token,
								const char *security_token,
								SoapOutcome *outcome);
extern Oid	campaign_soap_session_role(const char *token);
extern Oid	campaign_check_login(const char *login, const char *password);

/* http.c: the HTTP endpoint's workers */
extern void campaign_http_define_gucs(void);
extern Size campaign_http_shmem_size(void);
extern void campaign_http_shmem_init(void);
extern void campaign_http_register_workers(void);

/* deploy.c */
extern char *campaign_origin(void);


#endif							/* CAMPAIGN_H */
