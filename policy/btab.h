/*
 * btab.h -- the classifier's counts in memory: an open-addressing hash
 * table (linear probing, backward-shift deletion, no tombstones) from a
 * 64-bit token hash to its spam and ham counts.
 *
 * 16 bytes a slot, at most BTAB_LOAD_PCT percent full, sized in powers of
 * two: a million tokens take 32 MB. The key 0 marks an empty slot (btok
 * never makes it).
 *
 * Public calls: btab_new, btab_free, btab_get, btab_set, btab_count,
 *   btab_prefetch.
 * Ownership: the caller owns the table. Thread: none; bayes.c locks.
 */
#ifndef POSTERN_BTAB_H
#define POSTERN_BTAB_H

#include <stddef.h>
#include <stdint.h>

#define BTAB_LOAD_PCT	70

struct btab;

struct btab	*btab_new(size_t hint);
void		 btab_free(struct btab *);
/* 1 and the counts when key is there, else 0 (counts zeroed). */
int		 btab_get(const struct btab *, uint64_t key, unsigned *spam, unsigned *ham);
/* Store counts; both 0 removes the key. Grows as needed. */
void		 btab_set(struct btab *, uint64_t key, unsigned spam, unsigned ham);
size_t		 btab_count(const struct btab *);
/* Bytes the table holds (its slot array). */
size_t		 btab_bytes(const struct btab *);
/* Hint the CPU to fetch key's first slot: a batch of lookups then
 * overlaps its cache misses. */
void		 btab_prefetch(const struct btab *, uint64_t key);

#endif
