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

/* The lookups are inline: a 10 KB message makes about 10,000 of them,
 * and the calls were 17% of the classifier's CPU (bayes_bench 0.287 ->
 * 0.239 ms per message). The struct is here for them alone: only btab.c
 * writes it. */
struct btab_slot {
	uint64_t key;
	uint32_t spam, ham;
};

struct btab {
	struct btab_slot *s;
	size_t	 mask;		/* slots - 1 */
	size_t	 n;
};

/* Token hashes are XXH3 output: the low bits are already well mixed. */
static inline size_t
btab_home(const struct btab *t, uint64_t key)
{
	return (size_t)(key ^ (key >> 32)) & t->mask;
}

/* 1 and the counts when key is there, else 0 (counts zeroed). */
static inline int
btab_get(const struct btab *t, uint64_t key, unsigned *spam, unsigned *ham)
{
	for (size_t i = btab_home(t, key); ; i = (i + 1) & t->mask) {
		const struct btab_slot *sl = &t->s[i];
		if (sl->key == key) {
			*spam = sl->spam;
			*ham = sl->ham;
			return 1;
		}
		if (sl->key == 0) {
			*spam = *ham = 0;
			return 0;
		}
	}
}

/* Hint the CPU to fetch key's first slot: a batch of lookups then
 * overlaps its cache misses. */
static inline void
btab_prefetch(const struct btab *t, uint64_t key)
{
	__builtin_prefetch(&t->s[btab_home(t, key)]);
}

struct btab	*btab_new(size_t hint);
void		 btab_free(struct btab *);
/* Store counts; both 0 removes the key. Grows as needed. */
void		 btab_set(struct btab *, uint64_t key, unsigned spam, unsigned ham);
size_t		 btab_count(const struct btab *);
/* Bytes the table holds (its slot array). */
size_t		 btab_bytes(const struct btab *);

#endif
