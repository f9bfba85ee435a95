#!/usr/bin/env bash
# Installs what the tests need and runs every suite: lint, C (plain,
# ASan+UBSan, TSan), Python (pytest -n auto) and, once node/ has a package,
# Node. Safe to run on a fresh machine and again on a used one.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s ====\n' "$*"; }

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v gcc >/dev/null || need_apt+=(gcc)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v redis-server >/dev/null || need_apt+=(redis-server)  # tests/test_redis_*.py
if ((${#need_apt[@]})); then
  step "apt-get install ${need_apt[*]}"
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

step "Python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

step "lint (ruff) and types (mypy --strict, mypy.ini)"
.venv/bin/ruff check .
.venv/bin/mypy

bash tests/c/run.sh

step "Python tests (pytest -n auto)"
.venv/bin/python -m pytest -n auto -q -p no:cacheprovider

if [ -f node/package.json ]; then
  step "Node tests"
  (cd node && npm install --no-audit --no-fund && npm test)
fi
step "all suites passed"
