/*
 * greyc.c -- see greyc.h. Two fixed tables of slots; a key hashes to a
 * pair of neighbouring slots, and when both hold other keys the one used
 * least recently is dropped. No chains, no resizing: the memory is fixed
 * by GREYC_TRIPLETS and GREYC_NETS, plus the copied keys.
 */
#include "policy/greyc.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "net\nsender\nrcpt": neither part can hold a newline (SMTP lines end
 * there). The parts are at most 64 + 256 + 256 bytes in policy/grey.c. */
#define GREYC_KEY_MAX	640

struct greyc_slot {
	char		*key;		/* NULL: empty */
	uint32_t	 h;
	int		 passes;	/* networks only */
	time_t		 last_seen;
	uint64_t	 used;		/* table tick when last stored or found */
	uint64_t	 said_ms;	/* when the database said it (networks) */
};

struct greyc_tab {
	pthread_mutex_t	 mu;
	struct greyc_slot *slot;	/* nslots, allocated on first use */
	size_t		 nslots;
	int		 used;
	uint64_t	 tick;		/* counts uses: the pair's older one goes */
};

static struct greyc_tab	 greyc_triplets = { PTHREAD_MUTEX_INITIALIZER, NULL, GREYC_TRIPLETS, 0, 0 };
static struct greyc_tab	 greyc_nets = { PTHREAD_MUTEX_INITIALIZER, NULL, GREYC_NETS, 0, 0 };
static _Atomic unsigned long greyc_gen;

static uint32_t	 greyc_hash(const char *);
static int	 greyc_tkey(char *, const char *, const char *, const char *);
static struct greyc_slot *greyc_find(struct greyc_tab *, const char *, uint32_t);
static struct greyc_slot *greyc_claim(struct greyc_tab *, const char *, uint32_t, int *fresh);
static void	 greyc_tab_clear(struct greyc_tab *);
static void	 greyc_drop(struct greyc_tab *, const char *key);

static uint32_t
greyc_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The triplet's key into out (GREYC_KEY_MAX bytes): 0, or -1 when it
 * does not fit (such a triplet is simply not kept). */
static int
greyc_tkey(char *out, const char *net, const char *sender, const char *rcpt)
{
	int n = snprintf(out, GREYC_KEY_MAX, "%s\n%s\n%s", net, sender, rcpt);

	return n < 0 || n >= GREYC_KEY_MAX ? -1 : 0;
}

/* The slot holding key, or NULL. Lock held. */
static struct greyc_slot *
greyc_find(struct greyc_tab *t, const char *key, uint32_t h)
{
	size_t i = (h & (t->nslots - 1)) & ~(size_t)1;

	if (t->slot == NULL)
		return NULL;
	for (size_t k = i; k < i + 2; k++)
		if (t->slot[k].key != NULL && t->slot[k].h == h &&
		    strcmp(t->slot[k].key, key) == 0)
			return &t->slot[k];
	return NULL;
}

/* The slot for key: its own, an empty one of its pair, or the pair's
 * least recently used one, emptied (*fresh = 1 for the last two). Lock
 * held. */
static struct greyc_slot *
greyc_claim(struct greyc_tab *t, const char *key, uint32_t h, int *fresh)
{
	struct greyc_slot *s, *a, *b;
	size_t i = (h & (t->nslots - 1)) & ~(size_t)1;

	if (t->slot == NULL)
		t->slot = xcalloc(t->nslots, sizeof(*t->slot));
	if ((s = greyc_find(t, key, h)) != NULL) {
		*fresh = 0;
		return s;
	}
	a = &t->slot[i];
	b = &t->slot[i + 1];
	s = a->key == NULL ? a : b->key == NULL ? b : a->used <= b->used ? a : b;
	if (s->key == NULL)
		t->used++;
	free(s->key);
	memset(s, 0, sizeof(*s));
	s->key = xstrdup(key);
	s->h = h;
	*fresh = 1;
	return s;
}

int
greyc_triplet_get(const char *net, const char *sender, const char *rcpt,
    time_t *last_seen)
{
	char key[GREYC_KEY_MAX];
	struct greyc_slot *s;

	if (greyc_tkey(key, net, sender, rcpt) == -1)
		return 0;
	pthread_mutex_lock(&greyc_triplets.mu);
	if ((s = greyc_find(&greyc_triplets, key, greyc_hash(key))) != NULL) {
		*last_seen = s->last_seen;
		s->used = ++greyc_triplets.tick;
	}
	pthread_mutex_unlock(&greyc_triplets.mu);
	return s != NULL;
}

void
greyc_triplet_put(const char *net, const char *sender, const char *rcpt,
    time_t last_seen, int stored)
{
	char key[GREYC_KEY_MAX];
	struct greyc_slot *s;
	int fresh;

	if (greyc_tkey(key, net, sender, rcpt) == -1)
		return;
	pthread_mutex_lock(&greyc_triplets.mu);
	s = greyc_claim(&greyc_triplets, key, greyc_hash(key), &fresh);
	if (fresh || stored || last_seen > s->last_seen)
		s->last_seen = last_seen;
	s->used = ++greyc_triplets.tick;
	pthread_mutex_unlock(&greyc_triplets.mu);
}

void
greyc_triplet_forget(const char *net, const char *sender, const char *rcpt)
{
	char key[GREYC_KEY_MAX];

	if (greyc_tkey(key, net, sender, rcpt) == -1)
		return;
	greyc_drop(&greyc_triplets, key);
}

int
greyc_net_get(const char *net, int *passes, time_t *last_seen, long long *age_ms)
{
	struct greyc_slot *s;
	uint64_t now = time_mono_ms();

	pthread_mutex_lock(&greyc_nets.mu);
	if ((s = greyc_find(&greyc_nets, net, greyc_hash(net))) != NULL) {
		*passes = s->passes;
		*last_seen = s->last_seen;
		*age_ms = (long long)(now - s->said_ms);
		s->used = ++greyc_nets.tick;
	}
	pthread_mutex_unlock(&greyc_nets.mu);
	return s != NULL;
}

unsigned long
greyc_net_gen(void)
{
	return atomic_load(&greyc_gen);
}

void
greyc_net_put(const char *net, int passes, time_t last_seen, unsigned long gen)
{
	struct greyc_slot *s;
	int fresh;

	pthread_mutex_lock(&greyc_nets.mu);
	if (gen == atomic_load(&greyc_gen)) {
		s = greyc_claim(&greyc_nets, net, greyc_hash(net), &fresh);
		/* Both only grow in the database while the row lives. */
		if (fresh || passes > s->passes)
			s->passes = passes;
		if (fresh || last_seen > s->last_seen)
			s->last_seen = last_seen;
		s->said_ms = time_mono_ms();
		s->used = ++greyc_nets.tick;
	}
	pthread_mutex_unlock(&greyc_nets.mu);
}

void
greyc_net_seen(const char *net, time_t last_seen)
{
	struct greyc_slot *s;

	pthread_mutex_lock(&greyc_nets.mu);
	if ((s = greyc_find(&greyc_nets, net, greyc_hash(net))) != NULL)
		s->last_seen = last_seen;
	pthread_mutex_unlock(&greyc_nets.mu);
}

void
greyc_net_forget(const char *net)
{
	/* First the generation: a read that started before the write
	 * committed must not store its answer after we removed ours. */
	atomic_fetch_add(&greyc_gen, 1);
	greyc_drop(&greyc_nets, net);
}

/* Empty key's slot, if it holds one. */
static void
greyc_drop(struct greyc_tab *t, const char *key)
{
	struct greyc_slot *s;

	pthread_mutex_lock(&t->mu);
	if ((s = greyc_find(t, key, greyc_hash(key))) != NULL) {
		free(s->key);
		memset(s, 0, sizeof(*s));
		t->used--;
	}
	pthread_mutex_unlock(&t->mu);
}

static void
greyc_tab_clear(struct greyc_tab *t)
{
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; t->slot != NULL && i < t->nslots; i++)
		free(t->slot[i].key);
	free(t->slot);
	t->slot = NULL;
	t->used = 0;
	pthread_mutex_unlock(&t->mu);
}

void
greyc_clear(void)
{
	atomic_fetch_add(&greyc_gen, 1);
	greyc_tab_clear(&greyc_triplets);
	greyc_tab_clear(&greyc_nets);
}

void
greyc_count(int *triplets, int *nets)
{
	pthread_mutex_lock(&greyc_triplets.mu);
	*triplets = greyc_triplets.used;
	pthread_mutex_unlock(&greyc_triplets.mu);
	pthread_mutex_lock(&greyc_nets.mu);
	*nets = greyc_nets.used;
	pthread_mutex_unlock(&greyc_nets.mu);
}
