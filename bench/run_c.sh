#!/usr/bin/env bash
# Builds the C engine in Release and runs its microbenchmark (lane_bench).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/c-release -DCMAKE_BUILD_TYPE=Release -DLANE_ASAN=OFF -DLANE_TSAN=OFF >/dev/null
cmake --build build/c-release -j2 --target lane_bench
./build/c-release/lane_bench
