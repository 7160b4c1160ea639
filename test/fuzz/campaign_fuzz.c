/*-------------------------------------------------------------------------
 *
 * campaign_fuzz.c
 *	  libFuzzer targets for the record parser (xtk_ingest / xtk_ingest_ext)
 *	  and the schema parser (campaign.register_schema), run inside a real
 *	  PostgreSQL backend.
 *
 * The parsers live on palloc, ereport, the type input functions, SPI and the
 * catalogs, so they are fuzzed where they run: scripts/fuzz.sh compiles
 * every file of src/ and this one with clang's -fsanitize=fuzzer-no-link,
 * address into one module, preloads it into a single-user backend
 * (postgres --single, AddressSanitizer's runtime in LD_PRELOAD) and calls
 * campaign_fuzz(target, argv), which hands the loop to libFuzzer's
 * LLVMFuzzerRunDriver.
 *
 * Each input is one document.  It is run the way a SQL call would run it:
 * inputs that are not valid text (NUL bytes, invalid UTF-8: the SQL layer
 * refuses them before any function sees them) are rejected, and every
 * call runs in a subtransaction that is rolled back, so nothing is kept and
 * an ERROR is cleaned up by the same resource-owner machinery as a failed
 * statement.  The record target calls ingest_document() twice (xtk_ingest's
 * and xtk_ingest_ext's semantics); the schema target calls register_schema()
 * whole, DDL included, since names from the document reach SQL there.
 *
 * What counts as a finding: anything libFuzzer and AddressSanitizer report
 * (crash, memory error, leak of libxml2 or malloc memory, timeout), and an
 * ERROR of class XX (internal error: "cache lookup failed", "unrecognized
 * node type"...), which a caller's input must never be able to provoke; the
 * harness turns it into abort() so that libFuzzer keeps the input.
 *
 * AddressSanitizer sees palloc'd memory only per malloc'd block, so each
 * input runs in a memory context with 1 kB blocks, where any allocation
 * over 128 bytes gets a block of its own and overrunning it is caught.
 *
 * A third target, canary, has one planted defect per detector (a leak, a
 * heap overflow, an internal error); scripts/fuzz.sh runs it first and
 * requires each to be reported, so a run that reports nothing is known to
 * have been able to.
 *
 *-------------------------------------------------------------------------
 */
#include "campaign.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include <stdint.h>

PG_FUNCTION_INFO_V1(campaign_fuzz);

extern int	LLVMFuzzerRunDriver(int *argc, char ***argv,
								int (*callback) (const uint8_t *data, size_t size));

extern Datum register_schema(PG_FUNCTION_ARGS);

static MemoryContext input_cxt;

typedef void (*DocumentCall) (text *doc);

static void
call_xtk_ingest(text *doc)
{
	ingest_document(doc, false);
}

static void
call_xtk_ingest_ext(text *doc)
{
	ingest_document(doc, true);
}

static void
call_register_schema(text *doc)
{
	DirectFunctionCall2(register_schema, PointerGetDatum(doc), BoolGetDatum(false));
}

static void
call_internal_error(text *doc)
{
	elog(ERROR, "canary: planted internal error");
}

/*
 * Run call(doc) in a subtransaction and roll it back.  An ERROR is expected
 * (most inputs are invalid) unless its SQLSTATE is of class XX.
 */
static void
run_rolled_back(DocumentCall call, text *doc)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		call(doc);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INTERNAL_ERROR)
		{
			fprintf(stderr, "campaign_fuzz: internal error %s: %s\n",
					unpack_sql_state(edata->sqlerrcode), edata->message);
			abort();
		}
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
}

/* The document as the text argument a SQL call would pass, or NULL. */
static text *
document_text(const uint8_t *data, size_t size)
{
	if (size > MaxAllocSize - VARHDRSZ ||
		memchr(data, '\0', size) != NULL ||
		!pg_verifymbstr((const char *) data, size, true))
		return NULL;
	return cstring_to_text_with_len((const char *) data, size);
}

/*
 * Run each call of the NULL-terminated list on the input, as a document.
 * Returns -1 (not kept in the corpus) when the input is not one.
 */
static int
run_calls(const uint8_t *data, size_t size, const DocumentCall *calls)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(input_cxt);
	text	   *doc = document_text(data, size);

	for (; doc && *calls; calls++)
		run_rolled_back(*calls, doc);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(input_cxt);
	return doc ? 0 : -1;
}

static int
fuzz_record(const uint8_t *data, size_t size)
{
	static const DocumentCall calls[] = {call_xtk_ingest, call_xtk_ingest_ext, NULL};

	return run_calls(data, size, calls);
}

static int
fuzz_schema(const uint8_t *data, size_t size)
{
	static const DocumentCall calls[] = {call_register_schema, NULL};

	return run_calls(data, size, calls);
}

/* The planted defects: "leak", "overflow" or "internal" as the input. */
static void *volatile canary_pointer;
static volatile int canary_offset = 200;

static int
fuzz_canary(const uint8_t *data, size_t size)
{
	if (size == 4 && memcmp(data, "leak", 4) == 0)
	{
		canary_pointer = malloc(64);
		canary_pointer = NULL;
	}
	else if (size == 8 && memcmp(data, "overflow", 8) == 0)
	{
		char	   *chunk = MemoryContextAlloc(input_cxt, 200);

		chunk[canary_offset] = 'x';
		MemoryContextReset(input_cxt);
	}
	else if (size == 8 && memcmp(data, "internal", 8) == 0)
		run_rolled_back(call_internal_error, NULL);
	return 0;
}

/*
 * campaign_fuzz(target text, args text[]) returns integer
 *		Run libFuzzer on target 'record', 'schema' or 'canary' with the
 *		command-line arguments args (options, then corpus directories).
 *		libFuzzer ends the process when it is done, so nothing returns.
 */
Datum
campaign_fuzz(PG_FUNCTION_ARGS)
{
	char	   *target = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ArrayType  *args = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			nargs;
	int			argc;
	char	  **argv;
	int			(*callback) (const uint8_t *, size_t);

	if (strcmp(target, "record") == 0)
		callback = fuzz_record;
	else if (strcmp(target, "schema") == 0)
		callback = fuzz_schema;
	else if (strcmp(target, "canary") == 0)
		callback = fuzz_canary;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown fuzz target \"%s\"", target),
				 errhint("The targets are record, schema and canary.")));

	deconstruct_array(args, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nargs);
	argv = palloc0(sizeof(char *) * (nargs + 2));
	argv[0] = psprintf("campaign_fuzz_%s", target);
	for (argc = 1; argc <= nargs; argc++)
		argv[argc] = TextDatumGetCString(elems[argc - 1]);

	input_cxt = AllocSetContextCreate(TopMemoryContext, "campaign_fuzz input",
									  0, 1024, 1024);
	PG_RETURN_INT32(LLVMFuzzerRunDriver(&argc, &argv, callback));
}
