/*-------------------------------------------------------------------------
 *
 * replicate.h
 *	  One replication batch (replicate.c), as the worker runs it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPAIGN_REPLICATE_H
#define CAMPAIGN_REPLICATE_H

#include "libpq-fe.h"

typedef struct BatchResult
{
	int64		from;			/* cloud watermark before the batch */
	int64		upto;			/* and after it */
	int64		rows;			/* staged changes read */
	int64		counts[4];		/* applied, by StagedOperation */
	int64		rejected;
	int64		held;			/* waiting behind a rejected change of their key */
	int64		bytes;			/* field data read */
	char	   *warning;		/* what the batch found wrong, or NULL */
	char	   *pending;		/* bigint[] text: numbers at or below upto
								 * that may still commit */
	int64		lowest_pending; /* the first of them, 0 when none */
	bool		caught_up;		/* every number up to the staging sequence's
								 * value at the start was examined: what
								 * committed before the batch is sent */
} BatchResult;

/* Set once a batch has begun sending its rows (for ingestion requests). */
extern bool replication_data_sent;

extern bool replicate_batch(PGconn *conn, const char *schema_name,
							int64 known_upto, bool read_ahead, BatchResult *result);

#endif							/* CAMPAIGN_REPLICATE_H */
