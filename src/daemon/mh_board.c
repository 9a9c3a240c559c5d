/*
 * NAME
 *	mh_board 3
 * SUMMARY
 *	the master's and workers' shared scoreboard (see mh_board.h)
 * DESCRIPTION
 *	mmap(MAP_SHARED | MAP_ANONYMOUS) before the first fork: every worker
 *	inherits the same pages. Name slots are searched linearly: at most
 *	MH_BOARD_CHILDREN, once per config load, never per session (workers
 *	get a child-index -> slot table at fork).
 */
#include "daemon/mh_board.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

struct mh_board *mh_board_new(void)
{
	void *p = mmap(NULL, sizeof(struct mh_board), PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p; /* anonymous pages start zeroed */
}

void mh_board_free(struct mh_board *b)
{
	if (b != NULL)
		munmap(b, sizeof(*b));
}

int mh_board_child_find(const struct mh_board *b, const char *name)
{
	for (int i = 0; i < MH_BOARD_CHILDREN; i++)
		if (b->child[i].name[0] != '\0' && strcmp(b->child[i].name, name) == 0)
			return i;
	return -1;
}

int mh_board_child_take(struct mh_board *b, const char *name, uint32_t gen)
{
	int slot = mh_board_child_find(b, name);
	if (slot < 0) {
		for (int i = 0; i < MH_BOARD_CHILDREN && slot < 0; i++)
			if (b->child[i].name[0] == '\0')
				slot = i;
		if (slot < 0)
			return -1;
		/* A reused slot starts clean: no override of a former name. */
		MH_BOARD_SET(b->child[slot].override, 0);
		MH_BOARD_SET(b->child[slot].down, 0);
		snprintf(b->child[slot].name, sizeof(b->child[slot].name), "%s", name);
	}
	b->child[slot].last_gen = gen;
	return slot;
}

void mh_board_child_reclaim(struct mh_board *b, uint32_t oldest_alive)
{
	for (int i = 0; i < MH_BOARD_CHILDREN; i++)
		if (b->child[i].name[0] != '\0' && b->child[i].last_gen < oldest_alive)
			b->child[i].name[0] = '\0';
}

int mh_board_worker_free_slot(const struct mh_board *b)
{
	for (int i = 0; i < MH_BOARD_WORKERS; i++)
		if (MH_BOARD_GET(b->worker[i].pid) == 0)
			return i;
	return -1;
}

static void add_counts(struct mh_board_counts *to, const struct mh_board_counts *from, int live)
{
	if (live)
		to->sessions_now += MH_BOARD_GET(from->sessions_now);
	to->sessions_total += MH_BOARD_GET(from->sessions_total);
}

void mh_board_worker_retire(struct mh_board *b, int slot)
{
	struct mh_board_worker *w = &b->worker[slot];
	add_counts(&b->retired, &w->c, 0);
	memset(&w->c, 0, sizeof(w->c));
	MH_BOARD_SET(w->gen, 0);
	MH_BOARD_SET(w->pid, 0);
}

void mh_board_sum(const struct mh_board *b, struct mh_board_counts *out)
{
	memset(out, 0, sizeof(*out));
	add_counts(out, &b->retired, 0);
	for (int i = 0; i < MH_BOARD_WORKERS; i++)
		if (MH_BOARD_GET(b->worker[i].pid) != 0)
			add_counts(out, &b->worker[i].c, 1);
}
