"""Turn per-round numbers into the markdown table and the ratio chart."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from .scenarios import Config

REF = "awslambdaric"
OURS = "aruntime"
FLOOR = "floor"
FAST = "aruntime-fast"
COLUMNS = (FLOOR, REF, OURS, FAST)

# metric key -> runtime -> one value per round
Results = dict[str, dict[str, list[float]]]
# (runtime, scenario) -> why it produced no numbers
Failures = dict[tuple[str, str], str]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    scenario: str  # which scenario produces it (to show its failure)
    higher_is_better: bool = False
    goal: float | None = None  # aruntime/reference ratio to meet (<= unless higher is better)
    ratio: bool = True  # a ratio is meaningful (not for aruntime-only or near-zero rows)


def metrics(cfg: Config) -> list[Metric]:
    first, last = cfg.small[1], cfg.small[2]
    rows = [
        Metric("init_ms", "Init: start → first `GET /next`, empty handler", "ms", "invokes", goal=1.0),
        Metric("init_boto3_ms", "Init: start → first `GET /next`, `import boto3`", "ms", "init_boto3", goal=1.0),
        Metric("init_cpu_ms", "Init CPU, empty handler", "ms", "invokes"),
        Metric("init_rss_mib", "RSS at first `GET /next`, empty handler", "MiB", "invokes", goal=1.0),
        Metric("init_boto3_rss_mib", "RSS at first `GET /next`, `import boto3`", "MiB", "init_boto3", goal=1.0),
        Metric("cpu_us_100B", "CPU per invoke, 100 B event", "µs", "invokes", goal=0.7),
        Metric("cpu_us_10KiB", "CPU per invoke, 10 KiB event", "µs", "invokes", goal=0.7),
        Metric("cpu_us_1MiB", "CPU per invoke, 1 MiB event", "µs", "invokes", goal=0.7),
        Metric("ips_100B", "Invokes/s, 100 B, one at a time", "1/s", "invokes", higher_is_better=True),
        Metric("ips_10KiB", "Invokes/s, 10 KiB, one at a time", "1/s", "invokes", higher_is_better=True),
        Metric("ips_1MiB", "Invokes/s, 1 MiB, one at a time", "1/s", "invokes", higher_is_better=True),
        Metric("server_cpu_us_100B", "Lean Runtime API server's own CPU per 100 B invoke", "µs", "invokes", ratio=False),
        Metric("rss_first_mib", f"RSS after {first:,} invokes (100 B)", "MiB", "invokes", goal=1.0),
        Metric("rss_last_mib", f"RSS after {last:,} invokes (100 B)", "MiB", "invokes", goal=1.0),
        Metric("rss_growth_kib", f"RSS growth {first:,} → {last:,} invokes", "KiB", "invokes", ratio=False),
        Metric("stream_first_byte_us", "Streaming: first yield → first byte at the API", "µs", "streaming", ratio=False),
        Metric("stream_mb_s", "Streaming: throughput, 64 KiB chunks", "MB/s", "streaming", higher_is_better=True, ratio=False),
        Metric("stream_cpu_us_64k", "Streaming: CPU per 64 KiB chunk", "µs", "streaming", ratio=False),
        Metric("stream_cpu_us_sse", "Streaming: CPU per small SSE event", "µs", "streaming", ratio=False),
    ]
    for n in cfg.conc_levels:
        scen = f"conc{n}"
        rows += [
            Metric(f"conc{n}_ips", f"Concurrency N={n}: invokes/s ({cfg.conc_sleep_ms} ms I/O wait each)", "1/s", scen, higher_is_better=True),
            Metric(f"conc{n}_cpu_us", f"Concurrency N={n}: CPU per invoke", "µs", scen),
            Metric(f"conc{n}_pss_mib", f"Concurrency N={n}: memory (PSS, all processes)", "MiB", scen),
        ]
    return rows


def median(values: list[float]) -> float:
    return statistics.median(values)


def _num(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cell(values: list[float] | None, failure: str | None) -> str:
    if not values:
        if failure is None:
            return "n/a"
        return "pending" if failure.startswith("pending") else "failed"
    if len(values) == 1:
        return _num(values[0])
    return f"{_num(median(values))} ({_num(min(values))}–{_num(max(values))})"


def ratio(results: Results, key: str, num: str, den: str = REF) -> float | None:
    a, b = results.get(key, {}).get(num), results.get(key, {}).get(den)
    if not a or not b or median(b) == 0:
        return None
    return median(a) / median(b)


def goal_met(m: Metric, r: float) -> bool:
    assert m.goal is not None
    return r >= m.goal if m.higher_is_better else r <= m.goal


def render_markdown(
    cfg: Config,
    mode: str,
    results: Results,
    failures: Failures,
    machine: dict[str, str],
    started: str,
    seconds: float,
    runtimes: list[str],
    command: str = "python -m benchmarks",
) -> str:
    lines = [
        "# aruntime vs awslambdaric 4.2.2",
        "",
        f"- Date: {started} · run time {seconds:.0f} s · mode `{mode}` "
        f"({cfg.rounds} rounds, {cfg.conc_rounds} for concurrency; runtimes alternate each round)",
        f"- Command: `{command}` · aruntime at commit {machine.get('aruntime', 'unknown')}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['python']}, {machine['os']}",
        "- Cells: median (min–max) over rounds. CPU is the runtime process's own user+sys time "
        "(its POSIX CPU clock), read by the Runtime API server between `GET /next` requests.",
        "- `floor`: a blocking-socket loop doing only HTTP framing, JSON and the handler call.",
        "- `aruntime` runs the default wire engine (h11); `aruntime-fast` the `fast` extra's "
        "(httptools). The goal column judges `aruntime`.",
        "- Runtimes start as `python -S` with site-packages on `PYTHONPATH` (no `.pth` hooks such "
        "as an editable install's finder, which no deployed function runs); `--site` turns that off.",
        "",
    ]
    # The three contract columns always, in this order; bounds (asyncio-h11...) after them.
    columns = list(COLUMNS) + [rt for rt in runtimes if rt not in COLUMNS]
    extra = ["asyncio-raw", "asyncio-h11"]
    lines += [
        f"| Measure | unit | {' | '.join(columns)} | aruntime / ref | fast / ref | goal | floor / ref |",
        "|---|---|" + "---:|" * len(columns) + "---:|---:|---|---:|",
    ]
    for m in metrics(cfg):
        row = results.get(m.key, {})
        cells = []
        for rt in columns:
            if rt not in runtimes:
                cells.append("—")
                continue
            cells.append(_cell(row.get(rt), failures.get((rt, m.scenario))))
        r = ratio(results, m.key, OURS) if m.ratio else None
        rfast = ratio(results, m.key, FAST) if m.ratio else None
        rf = ratio(results, m.key, FLOOR) if m.ratio else None
        goal = ""
        if m.goal is not None:
            sign = "≥" if m.higher_is_better else "≤"
            goal = f"{sign} {m.goal:g}×"
            if r is not None:
                goal += " ✅" if goal_met(m, r) else " ❌"
        lines.append(
            f"| {m.label} | {m.unit} | {' | '.join(cells)} | "
            f"{f'{r:.2f}×' if r is not None else '—'} | {f'{rfast:.2f}×' if rfast is not None else '—'} | "
            f"{goal} | {f'{rf:.2f}×' if rf is not None else '—'} |"
        )
    if any(rt in runtimes for rt in extra):
        lines += [
            "",
            "`asyncio-h11` / `asyncio-raw` are bounds from `lean_loop.py`: the cheapest loop on an "
            "`asyncio.Protocol` with h11 framing / with hand parsing. No context, logging or error "
            "handling; they show what asyncio and h11 cost by themselves.",
        ]
    if failures:
        lines += ["", "Runs that produced no numbers:", ""]
        for (rt, scen), why in sorted(failures.items()):
            lines.append(f"- `{rt}` / `{scen}`: {why.replace('|', '/')[:300]}")
    lines += [
        "",
        "Reproduce: `python -m benchmarks` (full, ~4 min on 2 cores) or `python -m benchmarks --quick` (~30 s).",
        "",
    ]
    return "\n".join(lines)


def render_png(cfg: Config, results: Results, path: Path) -> bool:
    """Bar chart of aruntime/ref and floor/ref ratios; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = []
    for m in metrics(cfg):
        if not m.ratio:
            continue
        r = ratio(results, m.key, OURS)
        if r is None:
            continue
        better = "higher" if m.higher_is_better else "lower"
        rows.append((f"{m.label} ({better} is better)", r, ratio(results, m.key, FLOOR), m.goal))
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(rows) + 1.6))
    ys = list(range(len(rows)))[::-1]
    h = 0.38
    ax.barh([y + h / 2 for y in ys], [r for _, r, _, _ in rows], h, label="aruntime / awslambdaric", color="#2b7bba")
    floors = [(y, f) for y, (_, _, f, _) in zip(ys, rows) if f is not None]
    ax.barh([y - h / 2 for y, _ in floors], [f for _, f in floors], h, label="floor / awslambdaric", color="#bbbbbb")
    for y, (_, r, _, goal) in zip(ys, rows):
        ax.text(r, y + h / 2, f" {r:.2f}×", va="center", fontsize=8)
        if goal is not None:
            ax.plot([goal, goal], [y - 0.45, y + 0.45], color="#d62728", linewidth=2)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([label for label, _, _, _ in rows], fontsize=8)
    ax.set_xlabel("ratio to awslambdaric 4.2.2 (1.0 = same; red tick = goal)")
    ax.set_title("aruntime vs awslambdaric, same machine, same run")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
