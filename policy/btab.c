/*
 * btab.c -- see btab.h. Linear probing keeps a lookup to one or two
 * cache lines; backward-shift deletion keeps probe runs short without
 * tombstones, so a table that forgets as much as it learns never needs a
 * rebuild.
 */
#include "policy/btab.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

static void	 btab_grow(struct btab *);

struct btab *
btab_new(size_t hint)
{
	struct btab *t = xcalloc(1, sizeof(*t));
	size_t slots = 1024;

	while (slots * BTAB_LOAD_PCT / 100 < hint)
		slots *= 2;
	t->s = xcalloc(slots, sizeof(*t->s));
	t->mask = slots - 1;
	return t;
}

void
btab_free(struct btab *t)
{
	if (t == NULL)
		return;
	free(t->s);
	free(t);
}

/* Remove slot i and shift the run after it back into place. */
static void
btab_del(struct btab *t, size_t i)
{
	size_t j = i;

	for (;;) {
		j = (j + 1) & t->mask;
		if (t->s[j].key == 0)
			break;
		size_t h = btab_home(t, t->s[j].key);
		/* j's entry may move to i only if its home is not in (i, j] */
		if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
			t->s[i] = t->s[j];
			i = j;
		}
	}
	t->s[i].key = 0;
	t->n--;
}

void
btab_set(struct btab *t, uint64_t key, unsigned spam, unsigned ham)
{
	size_t i;

	for (i = btab_home(t, key); t->s[i].key != 0 && t->s[i].key != key;
	    i = (i + 1) & t->mask)
		;
	if (spam == 0 && ham == 0) {
		if (t->s[i].key == key)
			btab_del(t, i);
		return;
	}
	if (t->s[i].key == 0) {
		if ((t->n + 1) * 100 > (t->mask + 1) * BTAB_LOAD_PCT) {
			btab_grow(t);
			btab_set(t, key, spam, ham);
			return;
		}
		t->s[i].key = key;
		t->n++;
	}
	t->s[i].spam = spam;
	t->s[i].ham = ham;
}

static void
btab_grow(struct btab *t)
{
	struct btab_slot *old = t->s;
	size_t slots = (t->mask + 1) * 2;

	t->s = xcalloc(slots, sizeof(*t->s));
	t->mask = slots - 1;
	t->n = 0;
	for (size_t i = 0; i < slots / 2; i++)
		if (old[i].key != 0)
			btab_set(t, old[i].key, old[i].spam, old[i].ham);
	free(old);
}

size_t
btab_count(const struct btab *t)
{
	return t->n;
}

size_t
btab_bytes(const struct btab *t)
{
	return (t->mask + 1) * sizeof(*t->s);
}
