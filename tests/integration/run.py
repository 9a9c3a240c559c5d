#!/usr/bin/env python3
"""
run.py - milterhub integration suite: milterhub-mta against
milterhub-testmilter, asserting docs/tools.md.

  tests/integration/run.py --build BUILD_DIR [--filter SUBSTR] [--jobs N] [--list]

MH_WRAP="valgrind --error-exitcode=99 --leak-check=full" runs both tools
under that command. Exit status 0 iff no test failed.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import harness  # noqa: E402

import decisions  # noqa: E402,F401
import modifications  # noqa: E402,F401
import envelope  # noqa: E402,F401
import negotiation  # noqa: E402,F401
import content  # noqa: E402,F401
import transport  # noqa: E402,F401
import failures  # noqa: E402,F401
import sendmail  # noqa: E402,F401
import load  # noqa: E402,F401
import details  # noqa: E402,F401
import hub_envelope  # noqa: E402,F401
import hub_content  # noqa: E402,F401
import hub_negotiation  # noqa: E402,F401
import hub_failures  # noqa: E402,F401
import hub_quit_nc  # noqa: E402,F401
import hub_conditions  # noqa: E402,F401
import daemon  # noqa: E402,F401
import daemon_workers  # noqa: E402,F401
import daemon_supervise  # noqa: E402,F401
import daemon_control  # noqa: E402,F401
import daemon_service  # noqa: E402,F401
import stats_http  # noqa: E402,F401
import stats_page  # noqa: E402,F401
import stats_log  # noqa: E402,F401
import policy  # noqa: E402,F401
import scale  # noqa: E402,F401
import fault_matrix  # noqa: E402,F401
import mta_bad_input  # noqa: E402,F401

TOOLS = ["tools/mta/milterhub-mta", "tools/testmilter/milterhub-testmilter"]

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--build" in args and "--list" not in args:
        build = args[args.index("--build") + 1] if args.index("--build") + 1 < len(args) else ""
        missing = [t for t in TOOLS if not os.access(os.path.join(build, t), os.X_OK)]
        if missing:
            print("Bail out! not built in %s: %s" % (build, ", ".join(missing)))
            sys.exit(1)
    sys.exit(harness.main(args, title="integration tests"))
