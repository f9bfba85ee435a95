#!/usr/bin/env bash
# Builds the C engine in Release and runs its benchmark against the floor
# (lane_bench: bench/c_bench.c + bench/c_floor.c). Arguments go to lane_bench,
# e.g. --rounds 9, --min-ms 300, --caller-time, --clock, --single-threaded-process.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/c-release -DCMAKE_BUILD_TYPE=Release -DLANE_ASAN=OFF -DLANE_TSAN=OFF >/dev/null
cmake --build build/c-release -j2 --target lane_bench >/dev/null
./build/c-release/lane_bench "$@"
