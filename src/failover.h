/*-------------------------------------------------------------------------
 *
 * failover.h
 *	  Exactly once across a failover of the local server to its standby
 *	  (failover.c): the calls the ingest path, the worker and a batch make.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAMPAIGN_FAILOVER_H
#define CAMPAIGN_FAILOVER_H

#include "access/xlogdefs.h"
#include "libpq-fe.h"

extern char *campaign_synchronized_standby_slots;

extern void failover_define_gucs(void);

/* Ingest: the next number of a staging sequence, above the timeline's base. */
extern int64 failover_nextval(Oid seqid);

/* Worker, each turn of its main loop: idle while in recovery. */
extern void failover_wait_for_promotion(void);

/* Worker, before replicating a schema: check the cloud's watermark once. */
extern void failover_heal(PGconn *conn, const char *schema_name);
extern bool failover_heal_pending(const char *schema_name);

/* Batch: fail before sending when a listed standby cannot confirm. */
extern void failover_check_standbys(void);

/* Batch, before the cloud commits: wait for the standbys to confirm lsn. */
extern void failover_wait_for_standbys(XLogRecPtr lsn);

#endif							/* CAMPAIGN_FAILOVER_H */
