/*-------------------------------------------------------------------------
 *
 * campaign.c
 *	  Module entry point: GUCs of the campaign extension.
 *
 * The extension is meant to be loaded through shared_preload_libraries
 * (the replication worker and its shared memory need it); the GUCs are
 * defined in every backend that loads the module, under the reserved
 * prefix "campaign.".
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "utils/guc.h"

PG_MODULE_MAGIC;

char	   *campaign_database = NULL;
char	   *campaign_cloud_server = NULL;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomStringVariable("campaign.database",
							   "Database whose staging tables the replication worker serves.",
							   NULL,
							   &campaign_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("campaign.cloud_server",
							   "postgres_fdw foreign server of the cloud database.",
							   NULL,
							   &campaign_cloud_server,
							   "ffda",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	MarkGUCPrefixReserved("campaign");
}
