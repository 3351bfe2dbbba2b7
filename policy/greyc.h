/*
 * greyc.h -- greylisting answers the database gave, kept in memory, so a
 * recipient whose triplet passed before (or whose network is
 * auto-allowlisted) is decided without SQLite and without a worker
 * (grey_triplet in policy/grey.c, in a speculative run).
 *
 * The database stays the truth: it survives restarts, and every change of
 * state still goes through db_grey_update() and the writer. What is kept
 * here is only what the database said (after a read or a committed write
 * of this process), and only what cannot turn false behind our back:
 *  - triplets that passed, with their last_seen. In the database a passed
 *    row's last_seen only grows until it expires (and is pruned or started
 *    over), and the caller judges expiry from last_seen itself;
 *  - networks' auto-allowlist rows (passes, last_seen): both only grow
 *    until the row expires. A network below the threshold may cross it in
 *    another process (`postern check` on the same database): such an
 *    answer is trusted for GREYC_NEG_MS only. A pass counted by this
 *    process forgets the network (greyc_net_forget), and a read that began
 *    before it is not stored (the generation from greyc_net_gen()).
 * A triplet forgotten by hand (the API, on any node of a cluster) moves
 * the greylist's edit token (db_grey_token), and policy/grey.c then
 * clears this memory; other admin edits do not. Rows deleted behind Postern's back (the sqlite3 shell) are
 * noticed at the next refresh of last_seen (GREY_TOUCH_S) or after a
 * restart.
 *
 * Bounded: GREYC_TRIPLETS and GREYC_NETS slots, two-way set associative;
 * a full pair drops its older entry. Keys are copied.
 * Public calls: greyc_triplet_get, greyc_triplet_put, greyc_net_get,
 * greyc_triplet_forget, greyc_net_gen, greyc_net_put, greyc_net_seen, greyc_net_forget,
 * greyc_clear, greyc_count.
 * Thread: every call is safe from any thread (one mutex per table, held
 * for a hash lookup and a copy). Privilege: none.
 */
#ifndef POSTERN_GREYC_H
#define POSTERN_GREYC_H

#include <time.h>

#define GREYC_TRIPLETS	32768	/* slots, a power of 2 */
#define GREYC_NETS	8192	/* slots, a power of 2 */
#define GREYC_NEG_MS	10000	/* trust "not auto-allowlisted" this long */

/* A passed triplet's last_seen: 1 and *last_seen, or 0 when not known. */
int	 greyc_triplet_get(const char *net, const char *sender, const char *rcpt,
	    time_t *last_seen);
/* The triplet passed, last seen then: as a committed write of this
 * process stored it (stored = 1: replaces), or as a read saw it (the
 * later of this and what is kept wins: a write may have overtaken it). */
void	 greyc_triplet_put(const char *net, const char *sender, const char *rcpt,
	    time_t last_seen, int stored);

/* The triplet was deleted by hand: forget it. */
void	 greyc_triplet_forget(const char *net, const char *sender, const char *rcpt);

/* A network's auto-allowlist row: 1 with *passes and *last_seen (0 and 0
 * for "no row") and *age_ms since the database said so; 0 when unknown. */
int	 greyc_net_get(const char *net, int *passes, time_t *last_seen,
	    long long *age_ms);
/* Take before reading the database; hand to greyc_net_put. */
unsigned long greyc_net_gen(void);
/* What the database said about net (passes 0 when it had no row); not
 * stored when a pass was counted since gen was taken. */
void	 greyc_net_put(const char *net, int passes, time_t last_seen, unsigned long gen);
/* A committed write stamped the network's row with last_seen (no pass
 * counted); kept only when the network is. */
void	 greyc_net_seen(const char *net, time_t last_seen);
/* A committed write counted a pass for net: forget what we knew. */
void	 greyc_net_forget(const char *net);

/* Forget everything (another database opened; tests). */
void	 greyc_clear(void);
/* Entries kept: triplets, networks (tests, /metrics later). */
void	 greyc_count(int *triplets, int *nets);

#endif
