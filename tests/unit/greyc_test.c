/* greyc_test.c -- the greylisting cache: what a read or a committed write
 * stores, which of two answers wins, networks forgotten after a counted
 * pass (and a read that began before it not stored), the bound on entries,
 * keys too long to keep, and many threads at once. */
#include "t.h"
#include "policy/greyc.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

T_CASE(triplets)
{
	time_t seen = 0;

	greyc_clear();
	T_EQ_INT(greyc_triplet_get("192.0.2.0/24", "a@x.example", "b@y.example", &seen), 0);
	greyc_triplet_put("192.0.2.0/24", "a@x.example", "b@y.example", 1000, 0);
	T_EQ_INT(greyc_triplet_get("192.0.2.0/24", "a@x.example", "b@y.example", &seen), 1);
	T_EQ_INT(seen, 1000);
	/* each part counts; "a\nb" splits cannot collide with other parts */
	T_EQ_INT(greyc_triplet_get("192.0.2.0/24", "a@x.example", "c@y.example", &seen), 0);
	T_EQ_INT(greyc_triplet_get("198.51.100.0/24", "a@x.example", "b@y.example", &seen), 0);
	T_EQ_INT(greyc_triplet_get("192.0.2.0/24", "a@x.example\nb@y.example", "", &seen), 0);
	/* a read that saw an older row does not undo a newer one ... */
	greyc_triplet_put("192.0.2.0/24", "a@x.example", "b@y.example", 900, 0);
	T_EQ_INT(greyc_triplet_get("192.0.2.0/24", "a@x.example", "b@y.example", &seen), 1);
	T_EQ_INT(seen, 1000);
	greyc_triplet_put("192.0.2.0/24", "a@x.example", "b@y.example", 1100, 0);
	greyc_triplet_get("192.0.2.0/24", "a@x.example", "b@y.example", &seen);
	T_EQ_INT(seen, 1100);
	/* ... but what a write of ours stored is what the database holds */
	greyc_triplet_put("192.0.2.0/24", "a@x.example", "b@y.example", 950, 1);
	greyc_triplet_get("192.0.2.0/24", "a@x.example", "b@y.example", &seen);
	T_EQ_INT(seen, 950);
	greyc_clear();
	T_EQ_INT(greyc_triplet_get("192.0.2.0/24", "a@x.example", "b@y.example", &seen), 0);
}

T_CASE(networks)
{
	int passes = -1, nt, nn;
	time_t seen = -1;
	long long age = -1;
	unsigned long gen;

	greyc_clear();
	T_EQ_INT(greyc_net_get("192.0.2.0/24", &passes, &seen, &age), 0);
	gen = greyc_net_gen();
	greyc_net_put("192.0.2.0/24", 0, 0, gen);		/* no row */
	T_EQ_INT(greyc_net_get("192.0.2.0/24", &passes, &seen, &age), 1);
	T_EQ_INT(passes, 0);
	T_EQ_INT(seen, 0);
	T_ASSERT(age >= 0 && age < GREYC_NEG_MS);
	greyc_net_seen("192.0.2.0/24", 2000);			/* a write stamped it */
	greyc_net_get("192.0.2.0/24", &passes, &seen, &age);
	T_EQ_INT(seen, 2000);
	greyc_net_seen("203.0.113.0/24", 2000);		/* not kept: stays unknown */
	T_EQ_INT(greyc_net_get("203.0.113.0/24", &passes, &seen, &age), 0);
	/* a read that began before a counted pass is not stored */
	gen = greyc_net_gen();
	greyc_net_forget("192.0.2.0/24");
	T_EQ_INT(greyc_net_get("192.0.2.0/24", &passes, &seen, &age), 0);
	greyc_net_put("192.0.2.0/24", 4, 2000, gen);
	T_EQ_INT(greyc_net_get("192.0.2.0/24", &passes, &seen, &age), 0);
	greyc_net_put("192.0.2.0/24", 5, 2100, greyc_net_gen());
	T_EQ_INT(greyc_net_get("192.0.2.0/24", &passes, &seen, &age), 1);
	T_EQ_INT(passes, 5);
	T_EQ_INT(seen, 2100);
	/* both only grow while the row lives: an older read does not lower them */
	greyc_net_put("192.0.2.0/24", 4, 2050, greyc_net_gen());
	greyc_net_get("192.0.2.0/24", &passes, &seen, &age);
	T_EQ_INT(passes, 5);
	T_EQ_INT(seen, 2100);
	greyc_count(&nt, &nn);
	T_EQ_INT(nt, 0);
	T_EQ_INT(nn, 1);
	/* clearing also drops reads in flight */
	gen = greyc_net_gen();
	greyc_clear();
	greyc_net_put("192.0.2.0/24", 5, 2100, gen);
	T_EQ_INT(greyc_net_get("192.0.2.0/24", &passes, &seen, &age), 0);
}

T_CASE(bounded)
{
	char s[64];
	time_t seen;
	int nt, nn, kept = 0;

	greyc_clear();
	for (int i = 0; i < 3 * GREYC_TRIPLETS; i++) {
		snprintf(s, sizeof(s), "s%d@x.example", i);
		greyc_triplet_put("192.0.2.0/24", s, "r@y.example", 1000 + i, 1);
	}
	for (int i = 0; i < 2 * GREYC_NETS; i++) {
		snprintf(s, sizeof(s), "10.%d.%d.0/24", i / 256, i % 256);
		greyc_net_put(s, 1, 1000, greyc_net_gen());
	}
	greyc_count(&nt, &nn);
	T_ASSERT(nt > 0 && nt <= GREYC_TRIPLETS);
	T_ASSERT(nn > 0 && nn <= GREYC_NETS);
	/* the newest entries are the ones kept */
	for (int i = 3 * GREYC_TRIPLETS - 100; i < 3 * GREYC_TRIPLETS; i++) {
		snprintf(s, sizeof(s), "s%d@x.example", i);
		kept += greyc_triplet_get("192.0.2.0/24", s, "r@y.example", &seen) &&
		    seen == 1000 + i;
	}
	T_EQ_INT(kept, 100);
	greyc_clear();
	greyc_count(&nt, &nn);
	T_EQ_INT(nt + nn, 0);
}

T_CASE(long_keys_not_kept)
{
	char big[700];
	time_t seen;

	greyc_clear();
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	greyc_triplet_put("192.0.2.0/24", big, "r@y.example", 1000, 1);
	T_EQ_INT(greyc_triplet_get("192.0.2.0/24", big, "r@y.example", &seen), 0);
}

static void *
hammer(void *arg)
{
	char s[64];
	time_t seen;
	int id = *(int *)arg, bad = 0;

	for (int i = 0; i < 20000; i++) {
		snprintf(s, sizeof(s), "t%d-%d@x.example", id, i % 500);
		greyc_triplet_put("192.0.2.0/24", s, "r@y.example", 5000 + i % 500, 0);
		if (greyc_triplet_get("192.0.2.0/24", s, "r@y.example", &seen) &&
		    seen != 5000 + i % 500)
			bad++;
		if (i % 1000 == 0)
			greyc_net_forget("192.0.2.0/24");
		greyc_net_put("192.0.2.0/24", 1, 1000, greyc_net_gen());
	}
	return (void *)(long)bad;
}

T_CASE(threads)
{
	pthread_t th[4];
	int ids[4];
	long bad = 0;

	greyc_clear();
	for (int i = 0; i < 4; i++) {
		ids[i] = i;
		pthread_create(&th[i], NULL, hammer, &ids[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		bad += (long)r;
	}
	T_EQ_INT(bad, 0);
	greyc_clear();
}

int
main(void)
{
	T_RUN(triplets);
	T_RUN(networks);
	T_RUN(bounded);
	T_RUN(long_keys_not_kept);
	T_RUN(threads);
	greyc_clear();
	return T_END();
}
