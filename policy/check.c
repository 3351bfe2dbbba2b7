/* check.c -- `postern check`; placeholder until the checks land. */
#include "policy.h"
#include "util.h"

#include <stdio.h>

int
pol_check_main(int argc, char **argv)
{
	(void)argc; (void)argv;
	fprintf(stderr, "postern check: not implemented yet\n");
	return 1;
}
