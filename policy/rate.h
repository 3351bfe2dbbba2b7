/*
 * rate.h -- per-client-IP rate limits: connections per minute (checked at
 * connect: 421 4.7.0 and close) and messages per minute (checked at MAIL:
 * 450 4.7.1), counted over every node that shares the store.
 *
 * Windows are minutes of the wall clock (time_wall() / 60, the same on
 * every node whose clock is in time), one per (address, kind), in a
 * mutex-guarded hash table bounded by RATE_MAX_ENTRIES; past the bound
 * ended windows are swept, and a client that still finds no room is let
 * through (logged) rather than refused. Limits of 0 disable a kind.
 * IPv4-mapped IPv6 counts as IPv4 (the key is the session's textual
 * client address).
 *
 * The cluster: each node counts here, in memory, and decides here -- the
 * SMTP path never waits on the store. Once a second the sync thread
 * (rate_sync_start) hands what this node counted since to the db writer
 * (db_rate_add: one batch, waited for) and then reads the cluster's totals
 * of the current window (db_rate_each). A window's count is then
 *     what this node counted + (the cluster's total - this node's part
 *     of it when it was read),
 * so the node's own events are never counted twice and others' arrive
 * within about two seconds. Other nodes' counts go only to clients this
 * node has an entry for (has counted in the window): they take none of
 * its table, so a flood spread over other nodes cannot crowd out its own
 * clients; a client new here starts from its own count and has the
 * cluster's at the next round. While the store is out of reach, the count
 * is this node's plus the others' as last read (one log line per outage).
 *
 * Thread: any; the sync thread is the daemon's. Time: wall-clock
 * milliseconds passed by the caller (tests inject it).
 */
#ifndef POSTERN_RATE_H
#define POSTERN_RATE_H

#include <stddef.h>
#include <stdint.h>

struct pol_check;
struct db_rate_delta;

enum rate_kind { RATE_CONN = 0, RATE_MSG };

#define RATE_WINDOW_MS		60000
#define RATE_MAX_ENTRIES	65536
#define RATE_SYNC_MS		1000	/* counts to and from the store */

/* Count one event for key; 1 when it exceeds limit in the current window,
 * else 0. limit <= 0 counts nothing and returns 0. */
int	 rate_hit(const char *key, enum rate_kind, int limit, uint64_t now_ms);
/* Would rate_hit() say 1? Counts nothing: the check decides with this
 * and counts with rate_hit() in its .commit (policy/policy_int.h). */
int	 rate_over(const char *key, enum rate_kind, int limit, uint64_t now_ms);
/* Forget every window (tests, reload). */
void	 rate_reset(void);

/* The two halves of a sync round, apart for tests. rate_deltas: what was
 * counted here and not yet stored, for windows not ended at now_ms, sorted
 * by (win, kind, key); *n of them (the array and its keys xmalloc'd: free
 * with rate_deltas_free). rate_stored: they were committed. */
struct db_rate_delta *rate_deltas(uint64_t now_ms, size_t *n);
void	 rate_stored(const struct db_rate_delta *, size_t n);
void	 rate_deltas_free(struct db_rate_delta *, size_t n);
/* A cluster total read from the store (db_rate_each's row), taken when
 * its window is *(long long *)arg, the current one, and this node has an
 * entry for its client (never makes one): 0. */
int	 rate_cluster(void *arg, const struct db_rate_delta *row);
/* One round: store this node's deltas, read the totals. 0, or -1 when
 * the store could not be written or read. */
int	 rate_sync(uint64_t now_ms);
/* The daemon's sync thread, a round every RATE_SYNC_MS while a limit is
 * set; stop before db_close(). */
void	 rate_sync_start(void);
void	 rate_sync_stop(void);

extern const struct pol_check rate_check;

#endif
