/*
 * test_body - mh_body: memory below the limit, spill to an unlinked temp
 * file above it (byte-identical read-back in odd chunk sizes), reset,
 * swap, and a temp dir that cannot be used.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hub/mh_body.h"

#define BIG (5u * 1024 * 1024)

/* Deterministic bytes, NULs and CRLFs included. */
static uint8_t byte_at(uint64_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

static void fill(uint8_t *p, uint64_t from, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = byte_at(from + i);
}

static void append_pattern(struct mh_body *b, uint64_t total, const size_t *steps, size_t nsteps)
{
	uint8_t *chunk = malloc(70000);
	uint64_t done = 0;
	size_t k = 0;
	char err[256];

	assert_non_null(chunk);
	while (done < total) {
		size_t n = steps[k++ % nsteps];
		if (n > total - done)
			n = (size_t)(total - done);
		fill(chunk, done, n);
		assert_int_equal(mh_body_append(b, chunk, n, err, sizeof(err)), 0);
		done += n;
		assert_true(mh_body_size(b) == done);
	}
	free(chunk);
}

static void check_pattern(const struct mh_body *b, uint64_t total, const size_t *steps,
                          size_t nsteps)
{
	uint8_t *got = malloc(70000);
	uint8_t *want = malloc(70000);
	uint64_t off = 0;
	size_t k = 0;

	assert_non_null(got);
	assert_non_null(want);
	while (off < total) {
		size_t n = steps[k++ % nsteps];
		size_t expect = n < total - off ? n : (size_t)(total - off);
		ssize_t r = mh_body_read(b, off, got, n);
		assert_int_equal(r, (ssize_t)expect);
		fill(want, off, expect);
		assert_memory_equal(got, want, expect);
		off += expect;
	}
	assert_int_equal(mh_body_read(b, total, got, 10), 0);
	assert_int_equal(mh_body_read(b, total + 5, got, 10), 0);
	free(got);
	free(want);
}

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void stays_in_memory_below_the_limit(void **state)
{
	struct mh_body b;
	char err[128];
	char got[16];

	(void)state;
	mh_body_init(&b, 10, NULL);
	assert_int_equal(mh_body_append(&b, "hello", 5, err, sizeof(err)), 0);
	assert_int_equal(mh_body_append(&b, "", 0, err, sizeof(err)), 0);
	assert_int_equal(mh_body_append(&b, "world", 5, err, sizeof(err)), 0); /* exactly 10 */
	assert_int_equal(b.fd, -1);
	assert_true(mh_body_size(&b) == 10);
	assert_int_equal(mh_body_read(&b, 3, got, sizeof(got)), 7);
	assert_memory_equal(got, "loworld", 7);
	assert_int_equal(mh_body_read(&b, 0, got, 4), 4);
	assert_memory_equal(got, "hell", 4);
	mh_body_free(&b);
}

static void spills_above_the_limit_and_reads_back_identical(void **state)
{
	static const size_t wsteps[] = {1, 999, 4093, 65537, 3, 12345, 777};
	static const size_t rsteps[] = {7, 65539, 1021, 1, 33333};
	char dir[] = "/tmp/test_body.XXXXXX";
	struct mh_body b;
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	mh_body_init(&b, 1024, dir);
	append_pattern(&b, BIG, wsteps, sizeof(wsteps) / sizeof(wsteps[0]));
	assert_true(b.fd >= 0);
	assert_true(b.mem.cap == 0); /* memory part freed at the spill */
	assert_true(fcntl(b.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fstat(b.fd, &st), 0);
	assert_int_equal(st.st_nlink, 0); /* unlinked */
	assert_true((uint64_t)st.st_size == BIG);
	assert_int_equal(rmdir(dir), 0); /* nothing left in the directory */
	check_pattern(&b, BIG, rsteps, sizeof(rsteps) / sizeof(rsteps[0]));

	fd = b.fd;
	mh_body_reset(&b);
	assert_int_equal(b.fd, -1);
	assert_false(fd_is_open(fd));
	assert_true(mh_body_size(&b) == 0);
	assert_true(b.mem_limit == 1024);
	mh_body_free(&b);
}

static void spill_uses_tmpdir_env_when_unset(void **state)
{
	static const size_t steps[] = {100};
	char dir[] = "/tmp/test_body_env.XXXXXX";
	const char *old = getenv("TMPDIR");
	char *saved = old != NULL ? strdup(old) : NULL;
	struct mh_body b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	setenv("TMPDIR", dir, 1);
	mh_body_init(&b, 50, NULL);
	append_pattern(&b, 300, steps, 1);
	assert_true(b.fd >= 0);
	check_pattern(&b, 300, steps, 1);
	mh_body_free(&b);
	assert_int_equal(rmdir(dir), 0);
	if (saved != NULL)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
}

static void failed_spill_keeps_the_body_in_memory(void **state)
{
	struct mh_body b;
	char err[256] = "";
	char got[8];

	(void)state;
	mh_body_init(&b, 4, "/nonexistent/milterhub-test");
	assert_int_equal(mh_body_append(&b, "abc", 3, err, sizeof(err)), 0);
	assert_int_equal(mh_body_append(&b, "defg", 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/milterhub-test"));
	assert_int_equal(b.fd, -1);
	assert_true(mh_body_size(&b) == 3);
	assert_int_equal(mh_body_read(&b, 0, got, sizeof(got)), 3);
	assert_memory_equal(got, "abc", 3);
	mh_body_free(&b);
}

static void swap_exchanges_memory_and_file_bodies(void **state)
{
	static const size_t steps[] = {333};
	struct mh_body a, b;
	char err[128];
	char got[8];

	(void)state;
	mh_body_init(&a, 16, NULL);
	mh_body_init(&b, 1000, NULL);
	assert_int_equal(mh_body_append(&a, "short", 5, err, sizeof(err)), 0);
	append_pattern(&b, 5000, steps, 1);
	assert_true(b.fd >= 0);

	mh_body_swap(&a, &b);
	assert_true(a.fd >= 0);
	assert_true(mh_body_size(&a) == 5000);
	check_pattern(&a, 5000, steps, 1);
	assert_int_equal(b.fd, -1);
	assert_true(mh_body_size(&b) == 5);
	assert_int_equal(mh_body_read(&b, 0, got, sizeof(got)), 5);
	assert_memory_equal(got, "short", 5);
	mh_body_free(&a);
	mh_body_free(&b);
}

static void reset_then_reuse(void **state)
{
	static const size_t steps[] = {64};
	struct mh_body b;

	(void)state;
	mh_body_init(&b, 100, NULL);
	append_pattern(&b, 1000, steps, 1);
	assert_true(b.fd >= 0);
	mh_body_reset(&b);
	append_pattern(&b, 80, steps, 1); /* below the limit again: memory */
	assert_int_equal(b.fd, -1);
	check_pattern(&b, 80, steps, 1);
	mh_body_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(stays_in_memory_below_the_limit),
	    cmocka_unit_test(spills_above_the_limit_and_reads_back_identical),
	    cmocka_unit_test(spill_uses_tmpdir_env_when_unset),
	    cmocka_unit_test(failed_spill_keeps_the_body_in_memory),
	    cmocka_unit_test(swap_exchanges_memory_and_file_bodies),
	    cmocka_unit_test(reset_then_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
