/*-------------------------------------------------------------------------
 *
 * asan_preload.c
 *	  A library preloaded after AddressSanitizer's runtime into the fuzzing
 *	  backend (scripts/fuzz.sh), so that an uninstrumented postgres can
 *	  start under ASan at all.
 *
 * Debian's postgres binary is not built with ASan, so the runtime is put in
 * with LD_PRELOAD and initialises itself lazily, on the first malloc.  That
 * first malloc comes from a library constructor (libgpg-error's, pulled in
 * through GSSAPI) inside glibc's bindtextdomain(), which holds the gettext
 * state lock for writing.  ASan's initialisation looks up the optional
 * symbol swift_demangle; the failed dlsym() makes it call dlerror(), which
 * translates its message with dcgettext(), which takes and releases the same
 * lock: the lock's reader count goes negative and the next gettext call
 * (postgres's own, in main()) waits forever.  Defining swift_demangle makes
 * the lookup succeed, so dlerror() has nothing to translate.  ASan never
 * calls it: it demangles Swift symbols only, and our stacks have none.
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>

char	   *swift_demangle(const char *mangled, size_t mangled_len,
						   char *out, size_t *out_len, unsigned flags);

char *
swift_demangle(const char *mangled, size_t mangled_len,
			   char *out, size_t *out_len, unsigned flags)
{
	(void) mangled;
	(void) mangled_len;
	(void) out;
	(void) out_len;
	(void) flags;
	return NULL;
}
