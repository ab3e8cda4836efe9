#!/bin/sh
# schemathesis over the management API on SQLite and PostgreSQL, many more examples than
# `make test` runs: the same test (tests/admin/test_admin_schemathesis.py), with
# SPENDGATE_SCHEMATHESIS_EXAMPLES generated valid and as many invalid requests per
# operation (default 250 + 250 = 500), each sent to both databases. Prints the summary
# line (cases, statuses, failures); fails if any check failed.
#
#     sh reliability/schemathesis_admin.sh [examples-per-operation-and-mode]
set -eu
cd "$(dirname "$0")/.."
examples="${1:-${SPENDGATE_SCHEMATHESIS_EXAMPLES:-250}}"
SPENDGATE_SCHEMATHESIS_EXAMPLES="$examples" exec .venv/bin/pytest -p no:cacheprovider -q -s \
    tests/admin/test_admin_schemathesis.py
