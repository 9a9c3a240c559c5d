/*
 * mh_board - the scoreboard: one shared-memory page set the master maps
 * before its first fork, so master and workers see the same bytes.
 *
 * Two kinds of slot, each with a single writer, so no locks:
 *   - a child slot per milter name (written by the master): a runtime
 *     override from milterhubctl enable/disable, and "down" while a
 *     supervised milter is not answering. Workers read both at the start
 *     of every session. Slots are keyed by name, so an override survives
 *     a reload that keeps the name.
 *   - a worker slot per worker process (written by that worker): sessions
 *     open now and in total, for `milterhubctl status`. The master sums
 *     them; when a worker exits, the master folds its counts into the
 *     retired totals and frees the slot. (Everything else a worker
 *     counts lives in its statistics region, mh_stats.)
 * Three fields have many writers, with atomic operations: the last
 * session id (so ids in the log are unique across workers, restarts and
 * reloads), the sessions open in the whole daemon and their maximum.
 * Reads and writes are relaxed atomic loads and stores (each field is
 * naturally aligned); a reader may see one counter a moment before
 * another, never a torn value.
 */
#ifndef MH_BOARD_H
#define MH_BOARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MH_BOARD_CHILDREN 128 /* milter names alive across generations */
#define MH_BOARD_WORKERS 160 /* workers alive at once, draining ones included */
#define MH_BOARD_NAME 64

struct mh_board_child {
	char name[MH_BOARD_NAME]; /* "" = free */
	int8_t override; /* 0 none, 1 enabled, -1 disabled (milterhubctl) */
	uint8_t down; /* supervised and not answering: fallback at once */
	uint32_t last_gen; /* newest generation whose config names it */
};

struct mh_board_counts {
	uint64_t sessions_now;
	uint64_t sessions_total;
};

struct mh_board_worker {
	int32_t pid; /* 0 = free (master-written) */
	uint32_t gen; /* master-written before the fork */
	struct mh_board_counts c; /* worker-written */
};

struct mh_board {
	struct mh_board_child child[MH_BOARD_CHILDREN];
	struct mh_board_worker worker[MH_BOARD_WORKERS];
	struct mh_board_counts retired; /* master-written: workers gone */
	uint64_t last_session_id; /* every worker: atomic increment, ids unique daemon-wide */
	uint64_t sessions_open; /* every worker: atomic, sessions open in the daemon */
	uint64_t sessions_max; /* every worker: atomic maximum of sessions_open */
};

#define MH_BOARD_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define MH_BOARD_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
/* Single writer: a plain read-modify-write, published with a relaxed store. */
#define MH_BOARD_ADD(field, d) MH_BOARD_SET(field, MH_BOARD_GET(field) + (d))

/* Map a zeroed board shared with future children. NULL on failure (errno set). */
struct mh_board *mh_board_new(void);
void mh_board_free(struct mh_board *b);

/* The slot of name, or -1. */
int mh_board_child_find(const struct mh_board *b, const char *name);
/* The slot of name, taken if new (gen recorded); -1 when the board is full. */
int mh_board_child_take(struct mh_board *b, const char *name, uint32_t gen);
/* Free name slots whose last generation is older than oldest_alive. */
void mh_board_child_reclaim(struct mh_board *b, uint32_t oldest_alive);

/* A free worker slot, or -1. */
int mh_board_worker_free_slot(const struct mh_board *b);
/* Fold slot's counts into retired and free it (the worker has exited). */
void mh_board_worker_retire(struct mh_board *b, int slot);

/* Totals over live workers and the retired ones (sessions_now: live only). */
void mh_board_sum(const struct mh_board *b, struct mh_board_counts *out);

#endif
