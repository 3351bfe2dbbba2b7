/*
 * rate.h -- per-client-IP rate limits: connections per minute (checked at
 * connect: 421 4.7.0 and close) and messages per minute (checked at MAIL:
 * 450 4.7.1). In memory, shared by every worker: one fixed one-minute
 * window per (address, kind) in a mutex-guarded hash table bounded by
 * RATE_MAX_ENTRIES; past the bound stale windows are swept, and a client
 * that still finds no room is let through (logged) rather than refused.
 * Limits of 0 disable a kind. IPv4-mapped IPv6 counts as IPv4 (the key is
 * the session's textual client address).
 *
 * Thread: any. Time: monotonic milliseconds passed by the caller (tests
 * inject it).
 */
#ifndef POSTERN_RATE_H
#define POSTERN_RATE_H

#include <stdint.h>

struct pol_check;

enum rate_kind { RATE_CONN = 0, RATE_MSG };

#define RATE_WINDOW_MS		60000
#define RATE_MAX_ENTRIES	65536

/* Count one event for key; 1 when it exceeds limit in the current window,
 * else 0. limit <= 0 counts nothing and returns 0. */
int	 rate_hit(const char *key, enum rate_kind, int limit, uint64_t now_ms);
/* Would rate_hit() say 1? Counts nothing: the check decides with this
 * and counts with rate_hit() in its .commit (policy/policy_int.h). */
int	 rate_over(const char *key, enum rate_kind, int limit, uint64_t now_ms);
/* Forget every window (tests, reload). */
void	 rate_reset(void);

extern const struct pol_check rate_check;

#endif
