/*
 * NAME
 *	milterhub 8
 * SUMMARY
 *	the milter manager daemon: command line, then the master (mh_master)
 * SYNOPSIS
 *	milterhub [-c FILE] [-f]
 *	milterhub --check-config [FILE]
 *	milterhub --show-config [FILE]
 *	milterhub -h
 * DESCRIPTION
 *	Loads FILE (without -c: MH_CONFIG_DEFAULT_PATH when it exists, else
 *	the built-in defaults: design §4) and hands it to the master, which
 *	listens, forks the workers and runs until SIGTERM (mh_master.h).
 *	With daemonize = true (and no -f) it detaches first; the shell still
 *	gets exit 1 and the reason when start-up fails. Nothing is printed on
 *	stdout except by --check-config ("FILE: ok") and --show-config (the
 *	effective configuration, as Lua that loads back).
 * DIAGNOSTICS
 *	Exit 1 with one line on stderr for a bad command line, a bad config
 *	("FILE:LINE: ... key ...") or a failed start (socket in use, pid file
 *	locked, unknown user). Exit 0 after SIGTERM/SIGINT.
 */
#include "config/mh_config.h"
#include "daemon/mh_master.h"
#include "daemon/mh_privs.h"
#include "util/mh_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: milterhub [-c FILE] [-f]        run (no -c: " MH_CONFIG_DEFAULT_PATH "\n"
    "                                        if it exists, else built-in defaults);\n"
    "                                        -f: stay in the foreground even with daemonize\n"
    "       milterhub --check-config [FILE] validate FILE: \"FILE: ok\" and exit 0, or exit 1\n"
    "       milterhub --show-config [FILE]  print the effective configuration (defaults filled "
    "in)\n"
    "       milterhub -h                    this help\n"
    "Environment: MILTERHUB_LOG_LEVEL=debug|info|statistics|warn|err overrides the config's "
    "log_level.\n";

/* ------------------------------------------------------------ command line */

static int load(const char *path, struct mh_config *c)
{
	if (path == NULL) {
		mh_config_defaults(c);
		return 0;
	}
	char err[1024];
	if (mh_config_load(path, c, err, sizeof(err)) < 0) {
		fprintf(stderr, "milterhub: %s\n", err);
		return -1;
	}
	return 0;
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "milterhub: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage);
	return 1;
}

int main(int argc, char **argv)
{
	enum { RUN, CHECK, SHOW } mode = RUN;
	const char *path = NULL;
	int foreground = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(a, "-f") == 0 || strcmp(a, "--foreground") == 0) {
			foreground = 1;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
		           strcmp(a, "--check-config") == 0 || strcmp(a, "--show-config") == 0) {
			int optional = strcmp(a, "-c") != 0 && strcmp(a, "--config") != 0;
			if (strcmp(a, "--check-config") == 0)
				mode = CHECK;
			else if (strcmp(a, "--show-config") == 0)
				mode = SHOW;
			if (i + 1 >= argc || (optional && argv[i + 1][0] == '-')) {
				if (!optional)
					return bad_usage("%s needs a FILE", a);
				continue;
			}
			if (path != NULL)
				return bad_usage("more than one configuration file (%s)",
				                 argv[i + 1]);
			path = argv[++i];
		} else {
			return bad_usage("unknown argument '%s'", a);
		}
	}
	mh_log_set_ident("milterhub");
	/* No file named: the packaged one when it is there (design §4). */
	if (path == NULL && access(MH_CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = MH_CONFIG_DEFAULT_PATH;

	struct mh_config conf;
	if (load(path, &conf) < 0)
		return 1;
	int rc = 0;
	if (mode == CHECK) {
		printf("%s: ok\n", path ? path : "built-in defaults");
	} else if (mode == SHOW) {
		mh_config_show(&conf, stdout);
	} else {
		int ready_fd = -1;
		if (conf.daemonize && !foreground) {
			char err[512];
			ready_fd = mh_daemonize(strcmp(conf.log, "stderr") == 0, err, sizeof(err));
			if (ready_fd < 0) {
				fprintf(stderr, "milterhub: %s\n", err);
				mh_config_free(&conf);
				return 1;
			}
		}
		rc = mh_master_run(&conf, path, ready_fd); /* takes conf over */
	}
	mh_config_free(&conf);
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = 1;
	return rc;
}
