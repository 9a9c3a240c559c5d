/*
 * NAME
 *	mh_stats 3
 * SUMMARY
 *	counters in shared memory: regions, latency buckets, header results,
 *	the master's totals (see mh_stats.h)
 * DESCRIPTION
 *	A region is one mmap(MAP_SHARED | MAP_ANONYMOUS) per worker, made by
 *	the master before the fork, so the worker writes where the master
 *	reads; pages a worker never writes (children that never answer at
 *	some stage) stay unmapped zero pages of the region.
 *
 *	Header results follow what the common milters write: SpamAssassin's
 *	X-Spam-Flag (YES/NO) and X-Spam-Status ("Yes, score=..."/"No, ..."),
 *	clamav-milter's X-Virus-Status ("Clean", "Infected (...)"), and the
 *	method=result pairs of Authentication-Results (RFC 8601) for spf,
 *	dkim and dmarc, as opendkim, opendmarc and spf milters add them.
 */
#include "stats/mh_stats.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

const double mh_stats_bucket_le[MH_STATS_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* ------------------------------------------------------------- regions */

static size_t region_size(size_t nchildren)
{
	return sizeof(struct mh_stats_region) + nchildren * sizeof(struct mh_stats_child);
}

struct mh_stats_region *mh_stats_region_new(size_t nchildren)
{
	void *p = mmap(NULL, region_size(nchildren), PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct mh_stats_region *r = p;
	r->nchildren = (uint32_t)nchildren;
	return r;
}

void mh_stats_region_free(struct mh_stats_region *r)
{
	if (r != NULL)
		munmap(r, region_size(r->nchildren));
}

void mh_stats_latency(struct mh_stats_child *c, enum mh_hub_stage st, double seconds)
{
	unsigned b = 0;
	while (b < MH_STATS_BUCKETS - 1 && seconds > mh_stats_bucket_le[b])
		b++;
	MH_STATS_INC(c->lat_bucket[st][b]);
	MH_STATS_ADD(c->lat_sum_us[st], (uint64_t)(seconds > 0 ? seconds * 1e6 + 0.5 : 0));
	MH_STATS_INC(c->lat_count[st]);
}

/* -------------------------------------------------------------- totals */

#define GET(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)

static void add_child(struct mh_stats_child *to, const struct mh_stats_child *from)
{
	/* Every field is a uint64_t: add them as one array. */
	uint64_t *t = (uint64_t *)(void *)to;
	const uint64_t *f = (const uint64_t *)(const void *)from;
	for (size_t i = 0; i < sizeof(*to) / sizeof(uint64_t); i++)
		t[i] += GET(f[i]);
}

void mh_stats_totals_add(struct mh_stats_totals *t, const struct mh_stats_region *r,
                         const int16_t *slot_of, int live)
{
	const struct mh_stats_global *g = &r->g;
	uint64_t open = t->g.sessions_open;
	uint64_t *to = (uint64_t *)(void *)&t->g;
	const uint64_t *from = (const uint64_t *)(const void *)g;
	for (size_t i = 0; i < sizeof(*g) / sizeof(uint64_t); i++)
		to[i] += GET(from[i]);
	if (!live)
		t->g.sessions_open = open; /* a retired worker has no session open */
	for (uint32_t i = 0; i < r->nchildren; i++)
		if (slot_of[i] >= 0 && slot_of[i] < MH_STATS_NAMES)
			add_child(&t->child[slot_of[i]], &r->child[i]);
}

/* ------------------------------------------------------ header results */

static const char *const kind_names[MH_HK_COUNT] = {"spam", "virus", "spf", "dkim", "dmarc"};
static const char *const spam_results[MH_HDR_RESULTS] = {"yes", "no"};
static const char *const virus_results[MH_HDR_RESULTS] = {"clean", "infected", "other"};
static const char *const auth_results[MH_HDR_RESULTS] = {
    "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy"};

const char *mh_stats_hdr_kind_name(enum mh_hdr_kind k)
{
	return (unsigned)k < MH_HK_COUNT ? kind_names[k] : "invalid";
}

const char *mh_stats_hdr_result_name(enum mh_hdr_kind k, unsigned r)
{
	if (r >= MH_HDR_RESULTS)
		return NULL;
	switch (k) {
	case MH_HK_SPAM:
		return spam_results[r];
	case MH_HK_VIRUS:
		return virus_results[r];
	case MH_HK_SPF:
	case MH_HK_DKIM:
	case MH_HK_DMARC:
		return auth_results[r];
	default:
		return NULL;
	}
}

/* Does s start with word w (case-insensitive), followed by a non-letter? */
static int starts_word(const char *s, const char *w)
{
	size_t n = strlen(w);
	return strncasecmp(s, w, n) == 0 && !isalpha((unsigned char)s[n]);
}

static const char *skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return s;
}

/* The "method=result" pairs of an Authentication-Results value. */
static void auth_results_of(const char *v, void (*found)(enum mh_hdr_kind, unsigned, void *),
                            void *arg)
{
	static const struct {
		const char *method;
		enum mh_hdr_kind kind;
	} methods[] = {{"spf", MH_HK_SPF}, {"dkim", MH_HK_DKIM}, {"dmarc", MH_HK_DMARC}};
	for (const char *p = v; *p; p++) {
		/* a method starts a word: after the start, ';', or white space */
		if (p != v && p[-1] != ';' && p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n')
			continue;
		for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
			size_t n = strlen(methods[m].method);
			if (strncasecmp(p, methods[m].method, n) != 0)
				continue;
			const char *q = skip_space(p + n);
			if (*q != '=')
				continue;
			q = skip_space(q + 1);
			for (unsigned r = 0; r < MH_HDR_RESULTS; r++)
				if (auth_results[r] != NULL && starts_word(q, auth_results[r]))
					found(methods[m].kind, r, arg);
		}
	}
}

void mh_stats_classify_header(const char *name, const char *value,
                              void (*found)(enum mh_hdr_kind k, unsigned r, void *arg), void *arg)
{
	const char *v = skip_space(value ? value : "");
	if (strcasecmp(name, "X-Spam-Flag") == 0 || strcasecmp(name, "X-Spam-Status") == 0) {
		if (starts_word(v, "yes"))
			found(MH_HK_SPAM, 0, arg);
		else if (starts_word(v, "no"))
			found(MH_HK_SPAM, 1, arg);
	} else if (strcasecmp(name, "X-Virus-Status") == 0) {
		if (starts_word(v, "clean"))
			found(MH_HK_VIRUS, 0, arg);
		else if (starts_word(v, "infected"))
			found(MH_HK_VIRUS, 1, arg);
		else if (*v != '\0')
			found(MH_HK_VIRUS, 2, arg);
	} else if (strcasecmp(name, "Authentication-Results") == 0) {
		auth_results_of(v, found, arg);
	}
}
