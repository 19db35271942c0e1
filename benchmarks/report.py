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
    goal: float | None = None  # `aruntime` (h11) ratio to meet (<= unless higher is better)
    goal_fast: float | None = None  # `aruntime-fast` ratio to meet
    ratio: bool = True  # a ratio is meaningful (not for near-zero rows)
    base: str = REF  # the ratios' denominator: the reference, or the floor where it cannot run
    precision: int = 2  # a goal is judged on the ratio as shown (2 decimals)


def metrics(cfg: Config) -> list[Metric]:
    first, last = cfg.small[1], cfg.small[2]
    soak = cfg.soak
    rows = [
        Metric("init_ms", "Init: start → first `GET /next`, empty handler", "ms", "invokes", goal=1.0),
        Metric("init_boto3_ms", "Init: start → first `GET /next`, `import boto3`", "ms", "init_boto3", goal=1.0),
        Metric("first_response_ms", "Cold start: start → first response at the API, empty handler", "ms",
               "invokes", goal_fast=2.0),
        Metric("first_response_boto3_ms", "Cold start: start → first response at the API, `import boto3`", "ms",
               "init_boto3", goal_fast=1.03),
        Metric("init_cpu_ms", "Init CPU, empty handler", "ms", "invokes"),
        Metric("init_rss_mib", "RSS at first `GET /next`, empty handler", "MiB", "invokes", goal=1.0),
        Metric("init_boto3_rss_mib", "RSS at first `GET /next`, `import boto3`", "MiB", "init_boto3", goal=1.0),
        Metric("cpu_us_100B", "CPU per invoke, 100 B event", "µs", "invokes", goal=1.3, goal_fast=0.6),
        Metric("cpu_us_10KiB", "CPU per invoke, 10 KiB event", "µs", "invokes", goal=0.7),
        Metric("cpu_us_1MiB", "CPU per invoke, 1 MiB event", "µs", "invokes", goal=0.7),
        Metric("instr_k_100B", "Instructions per invoke, 100 B event (callgrind)", "k", "callgrind"),
        Metric("instr_m_init", "Instructions, start → first `GET /next` (+ exit), empty handler", "M", "callgrind"),
        Metric("instr_m_first", "Instructions, start → first response (+ exit), empty handler", "M", "callgrind"),
        Metric("instr_m_first_boto3", "Instructions, start → first response (+ exit), `import boto3`", "M",
               "callgrind"),
        Metric("ips_100B", "Invokes/s, 100 B, one at a time", "1/s", "invokes", higher_is_better=True),
        Metric("ips_10KiB", "Invokes/s, 10 KiB, one at a time", "1/s", "invokes", higher_is_better=True),
        Metric("ips_1MiB", "Invokes/s, 1 MiB, one at a time", "1/s", "invokes", higher_is_better=True),
        Metric("server_cpu_us_100B", "Lean Runtime API server's own CPU per 100 B invoke", "µs", "invokes", ratio=False),
        Metric("rss_first_mib", f"RSS after {first:,} invokes (100 B)", "MiB", "invokes", goal=1.0),
        Metric("rss_last_mib", f"RSS after {last:,} invokes (100 B)", "MiB", "invokes", goal=1.0),
        Metric("rss_growth_kib", f"RSS growth {first:,} → {last:,} invokes", "KiB", "invokes", ratio=False),
        Metric(f"soak_rss_mib_{soak[0]}", f"Long run: RSS after {soak[0]:,} invokes (100 B)", "MiB", "soak"),
        Metric(f"soak_rss_mib_{soak[-1]}", f"Long run: RSS after {soak[-1]:,} invokes", "MiB", "soak"),
        Metric("soak_growth_kib", f"Long run: RSS growth {soak[0]:,} → {soak[-1]:,} invokes", "KiB", "soak",
               ratio=False),
        Metric("stream_first_byte_us", "Streaming: first yield → first byte at the API", "µs", "streaming",
               goal=2.0, goal_fast=2.0, base=FLOOR),
        Metric("stream_mb_s", "Streaming: throughput, 64 KiB chunks", "MB/s", "streaming", higher_is_better=True,
               base=FLOOR),
        Metric("stream_cpu_us_64k", "Streaming: CPU per 64 KiB chunk", "µs", "streaming", base=FLOOR),
        Metric("stream_cpu_us_sse", "Streaming: CPU per small SSE event", "µs", "streaming",
               goal=1.2, goal_fast=1.2, base=FLOOR),
    ]
    for n in cfg.conc_levels:
        scen = f"conc{n}"
        rows += [
            Metric(f"conc{n}_ips", f"Concurrency N={n}: invokes/s ({cfg.conc_sleep_ms} ms I/O wait each)", "1/s", scen, higher_is_better=True),
            Metric(f"conc{n}_cpu_us", f"Concurrency N={n}: CPU per invoke", "µs", scen),
            Metric(f"conc{n}_pss_mib", f"Concurrency N={n}: memory (PSS, all processes)", "MiB", scen,
                   goal=0.07 if n == 64 else None, goal_fast=0.07 if n == 64 else None),
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


def goal_met(m: Metric, r: float, goal: float) -> bool:
    r = round(r, m.precision)  # judged as shown
    return r >= goal if m.higher_is_better else r <= goal


def goal_text(m: Metric, r: float | None, rfast: float | None) -> str:
    """`h11 ≤ 1.3× ❌ · fast ≤ 0.6× ✅`: each engine's goal and whether this run met it."""
    sign = "≥" if m.higher_is_better else "≤"
    base = " floor" if m.base == FLOOR else ""
    parts = []
    for who, goal, value in (("h11", m.goal, r), ("fast", m.goal_fast, rfast)):
        if goal is None:
            continue
        text = f"{who} {sign} {goal:g}×{base}"
        if value is not None:
            text += " ✅" if goal_met(m, value, goal) else " ❌"
        parts.append(text)
    return " · ".join(parts)


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
        "(httptools, and uvloop when N > 1). The goal column judges each (h11, fast) as shown, "
        "rounded to 2 decimals. Rows whose goal says `floor` (streaming: the reference cannot "
        "stream) show ratios to the floor, whose streaming is one blocking send per chunk.",
        "- Cold start: process start → the first `/response` complete at the API (the caller's "
        "cold start includes the first invoke). Instructions: user-space instructions counted by "
        "callgrind (deterministic; kernel time not included), from one run each; `+ exit` rows "
        "include the interpreter's exit, the same for every runtime.",
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
        r = ratio(results, m.key, OURS, m.base) if m.ratio else None
        rfast = ratio(results, m.key, FAST, m.base) if m.ratio else None
        rf = ratio(results, m.key, FLOOR) if m.ratio and m.base == REF else None
        goal = goal_text(m, r, rfast)
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
        "Reproduce: `python -m benchmarks` (full, ~9 min on 2 cores, callgrind included) or "
        "`python -m benchmarks --quick` (~1 min).",
        "",
    ]
    return "\n".join(lines)


def render_png(cfg: Config, results: Results, path: Path) -> bool:
    """Bar chart of aruntime/ref, aruntime-fast/ref and floor/ref; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = []
    for m in metrics(cfg):
        if not m.ratio or m.base != REF:
            continue
        r, rfast = ratio(results, m.key, OURS), ratio(results, m.key, FAST)
        if r is None and rfast is None:
            continue
        better = "higher" if m.higher_is_better else "lower"
        rows.append((f"{m.label} ({better} is better)", r, rfast, ratio(results, m.key, FLOOR), m))
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.6))
    ys = list(range(len(rows)))[::-1]
    h = 0.27
    for offset, index, label, color in ((h, 1, "aruntime (h11) / awslambdaric", "#2b7bba"),
                                        (0.0, 2, "aruntime-fast / awslambdaric", "#55a868"),
                                        (-h, 3, "floor / awslambdaric", "#bbbbbb")):
        bars = [(y, row[index]) for y, row in zip(ys, rows) if row[index] is not None]
        ax.barh([y + offset for y, _ in bars], [v for _, v in bars], h, label=label, color=color)
        if index < 3:
            for y, v in bars:
                ax.text(v, y + offset, f" {v:.2f}×", va="center", fontsize=7)
    for y, (_, _, _, _, m) in zip(ys, rows):
        for goal, offset, color in ((m.goal, h, "#d62728"), (m.goal_fast, 0.0, "#ff7f0e")):
            if goal is not None:
                ax.plot([goal, goal], [y + offset - h / 2, y + offset + h / 2], color=color, linewidth=2)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([row[0] for row in rows], fontsize=8)
    ax.set_xlabel("ratio to awslambdaric 4.2.2 (1.0 = same; ticks: goal for h11 red, for fast orange)")
    ax.set_title("aruntime vs awslambdaric, same machine, same run")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
