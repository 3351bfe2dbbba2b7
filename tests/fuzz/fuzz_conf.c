/* fuzz_conf.c -- the config file parser (lib/conf.h) through a memfd, as
 * conf_load() reads a real file. A loaded config must be whole (every
 * string key set); a refused one must name at least one problem. */
#include "lib/conf.h"
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static int fd = -1;
	char path[64];
	struct conf_err *errs = NULL;
	int nerrs = 0;
	struct conf *c;

	if (fd == -1 && (fd = memfd_create("fuzz-conf", 0)) == -1)
		abort();
	if (ftruncate(fd, 0) == -1 || pwrite(fd, d, n, 0) != (ssize_t)n)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	c = conf_load(path, &errs, &nerrs);
	if (c != NULL) {
		FUZZ_ASSERT(nerrs == 0);
		FUZZ_ASSERT(c->spool_dir != NULL && c->max_received >= 1);
		conf_unref(c);
	} else {
		FUZZ_ASSERT(nerrs > 0 && errs != NULL);
		for (int i = 0; i < nerrs; i++)
			FUZZ_ASSERT(strlen(errs[i].msg) < sizeof(errs[i].msg));
	}
	free(errs);
	return 0;
}
