/*
 * dkimbody_portable_test.c -- dkimbody_test's cases against the portable
 * eight-octet path of policy/dkimbody.c, which machines without SSE2 run
 * (this file defines dkimbody_hash itself, so the library's copy is not
 * linked in).
 */
#define DKIMBODY_PORTABLE 1
#include "policy/dkimbody.c"
#include "dkimbody_test.c"
