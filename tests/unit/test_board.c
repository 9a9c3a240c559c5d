/*
 * test_board - the shared scoreboard (src/daemon/mh_board.c): name slots
 * kept by name across generations and reclaimed only when no live
 * generation names them; a reused slot starts clean (no override);
 * worker slots whose counts survive the worker; sums over live and retired workers; and the
 * sharing itself: a forked child's writes are seen by the parent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/mh_board.h"

static int setup(void **state)
{
	*state = mh_board_new();
	return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	mh_board_free(*state);
	return 0;
}

static void names_keep_their_slot_across_generations(void **state)
{
	struct mh_board *b = *state;
	int a = mh_board_child_take(b, "opendkim", 1);
	int s = mh_board_child_take(b, "spamass", 1);
	assert_true(a >= 0 && s >= 0 && a != s);
	assert_int_equal(mh_board_child_find(b, "opendkim"), a);
	assert_int_equal(mh_board_child_find(b, "nosuch"), -1);
	/* generation 2 keeps opendkim only: its slot and its override stay */
	MH_BOARD_SET(b->child[a].override, -1);
	assert_int_equal(mh_board_child_take(b, "opendkim", 2), a);
	assert_int_equal(b->child[a].override, -1);
	/* while generation 1 still has workers, spamass is kept */
	mh_board_child_reclaim(b, 1);
	assert_int_equal(mh_board_child_find(b, "spamass"), s);
	/* generation 1 gone: spamass's slot is free, opendkim's is not */
	mh_board_child_reclaim(b, 2);
	assert_int_equal(mh_board_child_find(b, "spamass"), -1);
	assert_int_equal(mh_board_child_find(b, "opendkim"), a);
}

static void a_reused_slot_starts_clean(void **state)
{
	struct mh_board *b = *state;
	int s = mh_board_child_take(b, "old", 1);
	MH_BOARD_SET(b->child[s].override, 1);
	MH_BOARD_SET(b->child[s].down, 1);
	mh_board_child_reclaim(b, 2);
	int t = mh_board_child_take(b, "new", 2);
	assert_int_equal(t, s); /* the first free slot */
	assert_int_equal(b->child[t].override, 0);
	assert_int_equal(b->child[t].down, 0);
}

static void a_full_board_refuses_a_new_name(void **state)
{
	struct mh_board *b = *state;
	char name[32];
	for (int i = 0; i < MH_BOARD_CHILDREN; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		assert_true(mh_board_child_take(b, name, 1) >= 0);
	}
	assert_int_equal(mh_board_child_take(b, "one-more", 1), -1);
	assert_true(mh_board_child_take(b, "m5", 1) >= 0); /* known names still resolve */
}

static void counts_survive_their_worker(void **state)
{
	struct mh_board *b = *state;
	int w1 = mh_board_worker_free_slot(b);
	MH_BOARD_SET(b->worker[w1].pid, 100);
	int w2 = mh_board_worker_free_slot(b);
	assert_int_not_equal(w1, w2);
	MH_BOARD_SET(b->worker[w2].pid, 101);
	MH_BOARD_ADD(b->worker[w1].c.sessions_total, 10);
	MH_BOARD_ADD(b->worker[w1].c.sessions_now, 2);
	MH_BOARD_ADD(b->worker[w2].c.sessions_total, 5);
	MH_BOARD_ADD(b->worker[w2].c.sessions_now, 1);

	struct mh_board_counts sum;
	mh_board_sum(b, &sum);
	assert_int_equal(sum.sessions_total, 15);
	assert_int_equal(sum.sessions_now, 3);

	/* w1 is killed with 2 sessions open: its totals stay, its open ones do not */
	mh_board_worker_retire(b, w1);
	assert_int_equal(b->worker[w1].pid, 0);
	assert_int_equal(mh_board_worker_free_slot(b), w1);
	mh_board_sum(b, &sum);
	assert_int_equal(sum.sessions_total, 15);
	assert_int_equal(sum.sessions_now, 1);
}

static void a_forked_worker_writes_what_the_master_reads(void **state)
{
	struct mh_board *b = *state;
	int w = mh_board_worker_free_slot(b);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 1000; i++)
			MH_BOARD_ADD(b->worker[w].c.sessions_total, 1);
		__atomic_add_fetch(&b->last_session_id, 1, __ATOMIC_RELAXED);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(MH_BOARD_GET(b->worker[w].c.sessions_total), 1000);
	assert_int_equal(b->last_session_id, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(names_keep_their_slot_across_generations, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_reused_slot_starts_clean, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_full_board_refuses_a_new_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(counts_survive_their_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_forked_worker_writes_what_the_master_reads, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
