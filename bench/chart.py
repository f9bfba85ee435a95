"""The PNG chart of bench_targets.py's figures (matplotlib, Agg backend).

    python bench/bench_targets.py                      # full run, draws bench/chart.png
    python bench/chart.py out.json [bench/chart.png]   # redraw from a --json file

Three panels: submit -> start latency per lane while `prompt` fills the pool
with I/O-bound jobs and 1,000 more wait; `control`'s start latency by the
kind of prompt work (the GIL at work); throughput against ThreadPoolExecutor
and the a3s-lane 0.4.0 wheel. matplotlib is a bench-only dependency
(`pip install matplotlib`): without it the chart is skipped with a message.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Optional

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chart.png")

# (scenario name in bench_targets.py, label on the chart)
CONTROL_SCENARIOS = [
    ("I/O-bound, prompt widened", "I/O-bound"),
    ("CPU-bound, prompt widened", "CPU-bound,\n5 ms switch"),
    ("CPU-bound, prompt widened, switch 0.5 ms", "CPU-bound,\n0.5 ms switch"),
    ("CPU-bound in LocalDistributedQueue processes", "CPU-bound in\nprocesses"),
]
LATENCY_RANGE_MS = (0.005, 1_000.0)
P50_COLOUR, P99_COLOUR = "#4c78a8", "#f58518"
THROUGHPUT_FLOOR = 10.0
SERIES_COLOURS = {"ThreadPoolExecutor": "#9d9d9d", "a3s-lane": "#4c78a8",
                  "a3s-lane 0.4.0": "#e45756"}


def _ms(us: float) -> float:
    return us / 1_000.0


def _label(value: float) -> str:
    if value >= 1_000:
        return f"{value / 1_000:,.0f}k"
    return f"{value:,.0f}"


def _latency_label(ms: float) -> str:
    return f"{ms * 1_000:.0f} us" if ms < 1 else f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _paired_bars(axis: Any, labels: list[str], p50: list[float], p99: list[float]) -> None:
    width = 0.38
    xs = range(len(labels))
    for offset, values, colour, name in ((-width / 2, p50, P50_COLOUR, "p50"),
                                         (width / 2, p99, P99_COLOUR, "p99")):
        bars = axis.bar([x + offset for x in xs], values, width, color=colour, label=name)
        for bar, value in zip(bars, values):
            if not math.isnan(value):
                axis.annotate(_latency_label(value), (bar.get_x() + bar.get_width() / 2, value),
                              ha="center", va="bottom", fontsize=7, rotation=90,
                              xytext=(0, 2), textcoords="offset points")
    axis.set_xticks(list(xs))
    axis.set_xticklabels(labels, fontsize=7.5)
    axis.set_yscale("log")
    finite = [v for v in p50 + p99 if not math.isnan(v)]
    low, high = LATENCY_RANGE_MS
    axis.set_ylim(low, max([high, *(v * 30 for v in finite)]))  # room for the labels
    axis.axhline(1.0, color="#d62728", linestyle="--", linewidth=1)
    axis.text(-0.45, 1.0, "1 ms target", color="#d62728", fontsize=7, ha="left",
              va="bottom")
    axis.set_ylabel("submit -> start, ms (log)")
    axis.grid(axis="y", which="major", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", ncol=2)


def _throughput(document: dict[str, Any]) -> tuple[list[str], dict[str, list[float]]]:
    rows = {row["workload"][:3]: row for row in document["python_rows"]}
    by_prefix = {row["workload"]: row for row in document["python_rows"]}
    sdk = next(r for w, r in by_prefix.items() if w.startswith("(a) SDK"))
    old_cases = (document.get("old_wheel") or {}).get("cases", [])

    def old(index: int) -> float:
        if index < len(old_cases) and old_cases[index].get("old_wheel"):
            return old_cases[index]["old_wheel"]["ops_per_second"]
        return math.nan

    groups = ["1 caller,\nblocking", "16 callers,\nblocking", "100,000 submits\nthen wait"]
    series = {
        "ThreadPoolExecutor": [sdk["thread_pool_executor"]["median"],
                               rows["(c)"]["thread_pool_executor"]["median"],
                               rows["(b)"]["thread_pool_executor"]["median"]],
        "a3s-lane": [sdk["a3s_lane"]["median"], rows["(c)"]["a3s_lane"]["median"],
                     rows["(b)"]["a3s_lane"]["median"]],
        "a3s-lane 0.4.0": [old(0), old(1), math.nan],
    }
    return groups, series


def draw(document: dict[str, Any], path: str = DEFAULT_PATH) -> Optional[str]:
    """Writes the chart to `path` and returns it; None (with a message on
    stderr) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("SKIP chart: matplotlib is not installed (pip install matplotlib)",
              file=sys.stderr, flush=True)
        return None

    env = document["environment"]
    figure, (lanes_axis, control_axis, speed_axis) = plt.subplots(
        1, 3, figsize=(12.5, 5.2), dpi=80, gridspec_kw={"width_ratios": [5, 4, 4.2]})

    per_lane = document["per_lane_latency"]
    lane_ids = list(per_lane["lanes"])
    _paired_bars(lanes_axis, lane_ids,
                 [_ms(per_lane["lanes"][k]["p50"]) for k in lane_ids],
                 [_ms(per_lane["lanes"][k]["p99"]) for k in lane_ids])
    running = per_lane["running"]
    lanes_axis.set_title(f"Start latency per lane, pool saturated: prompt\nruns {running} "
                         "I/O-bound jobs, 1,000 more wait", fontsize=10)

    urgency = document["urgency"]
    shown = [(name, label) for name, label in CONTROL_SCENARIOS if name in urgency]
    _paired_bars(control_axis, [label for _, label in shown],
                 [_ms(urgency[name]["lanes"]["control"]["p50"]) for name, _ in shown],
                 [_ms(urgency[name]["lanes"]["control"]["p99"]) for name, _ in shown])
    control_axis.set_title("control start latency by prompt work\n"
                           "(CPU-bound: the GIL decides)", fontsize=10)
    control_axis.set_ylabel("")

    groups, series = _throughput(document)
    width = 0.27
    for index, (name, values) in enumerate(series.items()):
        xs = [g + (index - 1) * width for g in range(len(groups))]
        bars = speed_axis.bar(xs, [0 if math.isnan(v) else v for v in values], width,
                              color=SERIES_COLOURS[name], label=name)
        for bar, value in zip(bars, values):
            text = "n/a" if math.isnan(value) else _label(value)
            height = THROUGHPUT_FLOOR if math.isnan(value) else value
            speed_axis.annotate(text, (bar.get_x() + bar.get_width() / 2, height),
                                ha="center", va="bottom", fontsize=7, rotation=90,
                                xytext=(0, 2), textcoords="offset points")
    speed_axis.set_xticks(range(len(groups)))
    speed_axis.set_xticklabels(groups, fontsize=7.5)
    speed_axis.set_yscale("log")
    speed_axis.set_ylim(THROUGHPUT_FLOOR, 5e7)
    speed_axis.set_ylabel("ops/s (log)")
    speed_axis.set_title("Throughput against the baselines", fontsize=10)
    speed_axis.grid(axis="y", which="major", alpha=0.3)
    speed_axis.legend(fontsize=7.5, loc="upper center", ncol=3, columnspacing=0.8,
                      handlelength=1.2)
    figure.suptitle(f"a3s-lane, Python {env['python']}, {env['cpus']} CPUs "
                    f"({'quick' if env['quick'] else 'full'} run of bench/bench_targets.py)",
                    fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    with open(argv[0], encoding="utf-8") as handle:
        document = json.load(handle)
    written = draw(document, argv[1] if len(argv) > 1 else DEFAULT_PATH)
    if written:
        print(f"chart: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
