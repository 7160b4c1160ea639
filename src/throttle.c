/*-------------------------------------------------------------------------
 *
 * throttle.c
 *	  Per-API rate limits (Campaign's HTTP 429): one token bucket per API in
 *	  shared memory, set at runtime by campaign.set_rate_limit().
 *
 * Each API (xtk_ingest, xtk_ingest_ext, subscribe, ...) has a bucket
 * holding up to "burst" tokens, refilled continuously at "per_second"
 * tokens a second.  A call takes one token or, when the bucket holds less
 * than one, fails at once with SQLSTATE RL429 (ERRCODE_CAMPAIGN_RATE_LIMIT),
 * whose hint says how long until the next token.  The buckets are shared by
 * every backend of the cluster (every database), so the limit is
 * cluster-wide; a new or changed limit starts with a full bucket.
 *
 * Locking: each bucket has its own spinlock, held for a few arithmetic
 * operations (refill, take).  The clock is read before taking it; a reader
 * whose clock value is older than the bucket's last refill simply adds no
 * tokens.  Buckets are padded to a cache line each, so that hammering one
 * limited API does not slow the others.
 *
 * Cost without a limit: campaign_throttle() (campaign.h) reads one flag
 * per API, an atomic read without barrier, and returns; the flags sit
 * apart from the buckets, in a cache line that only set_rate_limit()
 * writes.  Counters of accepted and rejected calls are kept only while a
 * limit is set, under the bucket's spinlock.
 *
 * Limits live in shared memory only: a restart of the server clears them
 * (they are re-applied by whatever set them, e.g. a deployment script).
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include <math.h>
#include <time.h>

PG_FUNCTION_INFO_V1(set_rate_limit);
PG_FUNCTION_INFO_V1(check_rate_limit);
PG_FUNCTION_INFO_V1(rate_limits);

const char *const campaign_api_names[CAMPAIGN_NUM_APIS] = {
	[CAMPAIGN_API_XTK_INGEST] = "xtk_ingest",
	[CAMPAIGN_API_XTK_INGEST_EXT] = "xtk_ingest_ext",
	[CAMPAIGN_API_SUBSCRIBE] = "subscribe",
	[CAMPAIGN_API_UNSUBSCRIBE] = "unsubscribe",
	[CAMPAIGN_API_INGESTION_REQUEST] = "ingestion_request",
	[CAMPAIGN_API_INGESTION_STATUS] = "ingestion_status",
	[CAMPAIGN_API_SOAP] = "soap",
	[CAMPAIGN_API_LOGON_FAILURE] = "logon_failure",
};

/* Failed logons allowed by default: one a second, in bursts of ten. */
#define LOGON_FAILURE_PER_SECOND 1.0
#define LOGON_FAILURE_BURST 10

double		campaign_throttle_retry_after = 0;

/* One API's token bucket; everything under the spinlock. */
typedef struct ThrottleBucket
{
	slock_t		mutex;
	bool		limited;		/* false: no limit (the rest is unused) */
	double		per_second;
	int			burst;
	double		tokens;
	int64		refilled_ns;	/* monotonic clock of the last refill */
	TimestampTz since;			/* when the limit was set */
	uint64		accepted;
	uint64		rejected;
} ThrottleBucket;

typedef union ThrottleBucketPadded
{
	ThrottleBucket bucket;
	char		pad[PG_CACHE_LINE_SIZE];
} ThrottleBucketPadded;

StaticAssertDecl(sizeof(ThrottleBucket) <= PG_CACHE_LINE_SIZE,
				 "a throttle bucket must fit in one cache line");

typedef struct ThrottleShared
{
	/* Read by every call of a throttled API: written only by set_rate_limit. */
	union
	{
		pg_atomic_uint32 flags[CAMPAIGN_NUM_APIS];
		char		pad[PG_CACHE_LINE_SIZE];
	}			enabled;
	ThrottleBucketPadded buckets[CAMPAIGN_NUM_APIS];
} ThrottleShared;

static ThrottleShared *throttle = NULL;

/* The flags campaign_throttle() reads; NULL without the preload. */
pg_atomic_uint32 *campaign_throttle_enabled = NULL;

Size
campaign_throttle_shmem_size(void)
{
	return MAXALIGN(sizeof(ThrottleShared)) + PG_CACHE_LINE_SIZE;
}

/* Monotonic clock in nanoseconds: immune to changes of the wall clock. */
static int64
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Set a limit on the API, with a full bucket. */
static void
limit_bucket(CampaignApi api, double per_second, int burst)
{
	ThrottleBucket *b = &throttle->buckets[api].bucket;

	SpinLockAcquire(&b->mutex);
	b->limited = true;
	b->per_second = per_second;
	b->burst = burst;
	b->tokens = burst;
	b->refilled_ns = monotonic_ns();
	b->since = GetCurrentTimestamp();
	b->accepted = 0;
	b->rejected = 0;
	SpinLockRelease(&b->mutex);
	pg_atomic_write_u32(&throttle->enabled.flags[api], 1);
}

/* Called by campaign.c's shmem startup hook, under AddinShmemInitLock. */
void
campaign_throttle_shmem_init(void)
{
	bool		found;
	char	   *raw;
	int			i;

	raw = ShmemInitStruct("campaign throttle", campaign_throttle_shmem_size(),
						  &found);
	throttle = (ThrottleShared *) TYPEALIGN(PG_CACHE_LINE_SIZE, raw);
	if (!found)
	{
		memset(throttle, 0, sizeof(ThrottleShared));
		for (i = 0; i < CAMPAIGN_NUM_APIS; i++)
		{
			pg_atomic_init_u32(&throttle->enabled.flags[i], 0);
			SpinLockInit(&throttle->buckets[i].bucket.mutex);
		}
		limit_bucket(CAMPAIGN_API_LOGON_FAILURE, LOGON_FAILURE_PER_SECOND,
					 LOGON_FAILURE_BURST);
	}
	campaign_throttle_enabled = throttle->enabled.flags;
}

/* Refill the bucket up to now; the caller holds its spinlock. */
static void
refill(ThrottleBucket *b, int64 now_ns)
{
	if (now_ns > b->refilled_ns)
	{
		b->tokens = Min((double) b->burst,
						b->tokens + (now_ns - b->refilled_ns) * 1e-9 * b->per_second);
		b->refilled_ns = now_ns;
	}
}

/*
 * Take a token from the API's bucket when take, or only look whether one
 * is there; false when none is (campaign_throttle_retry_after then says
 * in how many seconds one will be).  Without a limit, true.
 */
static bool
bucket_has_token(CampaignApi api, bool take, double *per_second, int *burst)
{
	ThrottleBucket *b = &throttle->buckets[api].bucket;
	int64		now_ns = monotonic_ns();
	bool		accepted = true;

	SpinLockAcquire(&b->mutex);
	if (b->limited)
	{
		refill(b, now_ns);
		accepted = b->tokens >= 1.0;
		if (accepted && take)
		{
			b->tokens -= 1.0;
			b->accepted++;
		}
		else if (!accepted)
		{
			b->rejected++;
			*per_second = b->per_second;
			*burst = b->burst;
			campaign_throttle_retry_after = (1.0 - b->tokens) / b->per_second;
		}
	}
	SpinLockRelease(&b->mutex);
	return accepted;
}

static void
rate_limit_error(CampaignApi api, double per_second, int burst)
{
	ereport(ERROR,
			(errcode(ERRCODE_CAMPAIGN_RATE_LIMIT),
			 errmsg("API \"%s\" is over its rate limit of %g calls per second",
					campaign_api_names[api], per_second),
			 errdetail_plural("The limit allows bursts of %d call.",
							  "The limit allows bursts of %d calls.",
							  burst, burst),
			 errhint("Retry in %.3f seconds.", campaign_throttle_retry_after)));
}

/*
 * The slow path of campaign_throttle(): the API has a limit.  Take a token
 * or fail with ERRCODE_CAMPAIGN_RATE_LIMIT.
 */
void
campaign_throttle_take(CampaignApi api)
{
	double		per_second = 0;
	int			burst = 0;

	if (!bucket_has_token(api, true, &per_second, &burst))
		rate_limit_error(api, per_second, burst);
}

/*
 * For an API that counts failures (logon_failure): fail as
 * campaign_throttle_take() does when the bucket is empty, without taking a
 * token.
 */
void
campaign_throttle_check(CampaignApi api)
{
	double		per_second = 0;
	int			burst = 0;

	if (campaign_throttle_enabled != NULL &&
		pg_atomic_read_u32(&campaign_throttle_enabled[api]) != 0 &&
		!bucket_has_token(api, false, &per_second, &burst))
		rate_limit_error(api, per_second, burst);
}

/* A failure happened: take a token if there is one, never fail. */
void
campaign_throttle_spend(CampaignApi api)
{
	double		per_second;
	int			burst;

	if (campaign_throttle_enabled != NULL &&
		pg_atomic_read_u32(&campaign_throttle_enabled[api]) != 0)
		(void) bucket_has_token(api, true, &per_second, &burst);
}

/* The API named so, or an error listing the names. */
static CampaignApi
api_by_name(const char *name)
{
	StringInfoData names;
	int			i;

	for (i = 0; i < CAMPAIGN_NUM_APIS; i++)
		if (strcmp(name, campaign_api_names[i]) == 0)
			return (CampaignApi) i;

	initStringInfo(&names);
	for (i = 0; i < CAMPAIGN_NUM_APIS; i++)
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "", campaign_api_names[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown API \"%s\"", campaign_shorten(name)),
			 errhint("The APIs are %s.", names.data)));
	pg_unreachable();
}

/*
 * campaign.set_rate_limit(api text, per_second float8, burst int DEFAULT NULL)
 * returns text
 *		Limit an API to per_second calls a second, with bursts of up to
 *		burst calls (NULL: one second's worth, at least 1); a NULL
 *		per_second removes the limit.  Takes effect at once, in every
 *		backend, whatever becomes of the calling transaction.
 */
Datum
set_rate_limit(PG_FUNCTION_ARGS)
{
	CampaignApi api;
	ThrottleBucket *b;
	double		per_second;
	int			burst;

	campaign_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("API name must not be null")));
	api = api_by_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	b = &throttle->buckets[api].bucket;

	if (PG_ARGISNULL(1))
	{
		SpinLockAcquire(&b->mutex);
		b->limited = false;
		SpinLockRelease(&b->mutex);
		pg_atomic_write_u32(&throttle->enabled.flags[api], 0);
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s: no limit",
												  campaign_api_names[api])));
	}

	per_second = PG_GETARG_FLOAT8(1);
	if (!(per_second > 0) || isinf(per_second))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rate limit must be a positive number of calls per second, not %g",
						per_second),
				 errhint("Pass NULL to remove the limit.")));
	if (PG_ARGISNULL(2))
		burst = per_second >= INT_MAX ? INT_MAX : Max(1, (int) ceil(per_second));
	else
	{
		burst = PG_GETARG_INT32(2);
		if (burst < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("burst must be at least 1 call, not %d", burst)));
	}

	limit_bucket(api, per_second, burst);

	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s: %g calls per second, burst %d",
											  campaign_api_names[api],
											  per_second, burst)));
}

/*
 * campaign.check_rate_limit(api text) returns void
 *		campaign_throttle() for API functions written in SQL: their first
 *		statement.
 */
Datum
check_rate_limit(PG_FUNCTION_ARGS)
{
	campaign_throttle(api_by_name(text_to_cstring(PG_GETARG_TEXT_PP(0))));
	PG_RETURN_VOID();
}

/*
 * campaign.rate_limit_state() returns setof (api, per_second, burst, tokens,
 * accepted, rejected, limited_since)
 *		Every API, with its limit (NULLs when it has none), the tokens its
 *		bucket holds now, and the calls accepted and rejected since the limit
 *		was set.  Behind the view campaign.rate_limits.
 */
Datum
rate_limits(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	campaign_require_preload();
	InitMaterializedSRF(fcinfo, 0);

	for (i = 0; i < CAMPAIGN_NUM_APIS; i++)
	{
		ThrottleBucket *b = &throttle->buckets[i].bucket;
		ThrottleBucket copy;
		Datum		values[7];
		bool		nulls[7];

		SpinLockAcquire(&b->mutex);
		if (b->limited)
			refill(b, monotonic_ns());
		copy = *b;
		SpinLockRelease(&b->mutex);

		memset(nulls, !copy.limited, sizeof(nulls));
		values[0] = CStringGetTextDatum(campaign_api_names[i]);
		nulls[0] = false;
		values[1] = Float8GetDatum(copy.per_second);
		values[2] = Int32GetDatum(copy.burst);
		values[3] = Float8GetDatum(copy.tokens);
		values[4] = Int64GetDatum((int64) copy.accepted);
		values[5] = Int64GetDatum((int64) copy.rejected);
		values[6] = TimestampTzGetDatum(copy.since);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
