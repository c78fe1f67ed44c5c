#!/usr/bin/env bash
# The test command (README's second command; .ci/run calls it): installs what is missing, builds,
# type-checks, lints, then runs every test file with node's built-in runner, which ends with a
# pass/fail summary. Tests start their own isolated berthd instances; nothing here touches
# /run/berth.sock or /var/lib/berth.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
echo "== build (native addon + TypeScript, type-checked)"
npm run --silent build
echo "== lint"
npx eslint --max-warnings 0 src test scripts bench
echo "== tests"
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ "$#" -gt 0 ]; then mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -E "$1"); fi
# One file at a time by default: the networking tests compare host-wide state (links, iptables
# rules) before and after, which another file's daemons would change underneath them.
exec node --test --test-concurrency="${BERTH_TEST_CONCURRENCY:-1}" "${files[@]}"
