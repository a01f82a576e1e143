"""Markdown tables from ``bench/results/*.json``: ``python -m bench.report``.

The profiles ``python -m bench.profile`` wrote (``bench/results/profile/``) follow the
tables.

``docs/benchmarks.md`` quotes these tables; generating them from the JSON a run wrote
keeps the document and the measurement from drifting apart.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from bench.profile import format_profile

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _ms(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _cpu(cpu: dict[str, float]) -> str:
    """Each process's share of one core, biggest first; ``all``/``others`` last."""
    ours = sorted(
        ((k, v) for k, v in cpu.items() if k not in ("all", "others") and v >= 1),
        key=lambda kv: -kv[1],
    )
    parts = [f"{k} {v:.0f}" for k, v in ours]
    parts.append(f"others {cpu.get('others', 0):.0f}")
    return ", ".join(parts)


def chat_tables(document: dict[str, Any]) -> str:
    """Throughput and latency per run, then CPU per message."""
    lines = [
        "| target | run | durable msg/s | send→response p50 / p99 / max (ms) "
        "| send→push p50 / p99 / max (ms) | acked / pushed | CPU, % of one core |",
        "|---|---|---:|---|---|---|---|",
    ]
    for r in document["results"]:
        resp, push = r["response"], r["push"]
        lines.append(
            f"| {r['target']} | {r['mode']} | {r['throughput']:,.0f} "
            f"| {_ms(resp, 'p50_ms')} / {_ms(resp, 'p99_ms')} / {_ms(resp, 'max_ms')} "
            f"| {_ms(push, 'p50_ms')} / {_ms(push, 'p99_ms')} / {_ms(push, 'max_ms')} "
            f"| {r['acked']:,} / {r['pushes']:,} | {_cpu(r['cpu_percent'])} |"
        )
    lines += [
        "",
        "| target | run | CPU µs per message, by process |",
        "|---|---|---|",
    ]
    for r in document["results"]:
        per = r.get("cpu_us_per_message", {})
        shown = ", ".join(
            f"{k} {v:.0f}"
            for k, v in sorted(per.items(), key=lambda kv: -kv[1])
            if k not in ("all", "others") and v >= 1
        )
        lines.append(f"| {r['target']} | {r['mode']} | {shown} |")
    return "\n".join(lines)


def group_tables(document: dict[str, Any]) -> str:
    """Per pass: deliveries/s, storage time and time to the first and last member."""
    members = document["config"]["members"]
    lines = [
        f"| target | pass (window) | messages complete | deliveries/s "
        f"| send→response p50 / p99 (ms) | send→first member p50 (ms) "
        f"| send→last of {members - 1} p50 / p99 / max (ms) | CPU, % of one core |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for r in document["results"]:
        for p in r["passes"]:
            store, first, last = p["store"], p["first_member"], p["last_member"]
            lines.append(
                f"| {r['target']} | {p['name']} ({p['window']}) "
                f"| {p['complete']} / {p['messages']} | {p['deliveries_per_s']:,.0f} "
                f"| {_ms(store, 'p50_ms')} / {_ms(store, 'p99_ms')} | {_ms(first, 'p50_ms')} "
                f"| {_ms(last, 'p50_ms')} / {_ms(last, 'p99_ms')} / {_ms(last, 'max_ms')} "
                f"| {_cpu(p['cpu_percent'])} |"
            )
    return "\n".join(lines)


def connection_tables(document: dict[str, Any]) -> str:
    """Gateway memory per idle logged-in connection, and what closing them gave back."""
    lines = [
        "| target | process | connections (failed) | logins/s while opening "
        "| RSS before / open / after close (MiB) | per connection | handed back "
        "| projected at 100,000 |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    for r in document["results"]:
        mib = [r[k] / 1024 for k in ("rss_before_kib", "rss_open_kib", "rss_closed_kib")]
        lines.append(
            f"| {r['target']} | {r['process']} | {r['opened']:,} ({r['failed']}) "
            f"| {r['logins_per_s']:,.0f} | {mib[0]:.0f} / {mib[1]:.0f} / {mib[2]:.0f} "
            f"| {r['per_connection_bytes'] / 1024:.1f} KiB | {r['handed_back_fraction']:.0%} "
            f"| {r['projected_100k_mib']:,.0f} MiB |"
        )
    return "\n".join(lines)


def login_tables(document: dict[str, Any]) -> str:
    """Logins/s and latency per number in flight, with CPU µs per login."""
    lines = [
        "| target | in flight | logins/s | connect→logged in p50 / p99 / max (ms) | failed "
        "| CPU, % of one core | CPU µs per login |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for r in document["results"]:
        lat = r["latency"]
        per = ", ".join(
            f"{k} {v:.0f}"
            for k, v in sorted(r["cpu_us_per_login"].items(), key=lambda kv: -kv[1])
            if k not in ("all", "others") and v >= 1
        )
        lines.append(
            f"| {r['target']} | {r['config']['in_flight']} | {r['logins_per_s']:,.0f} "
            f"| {_ms(lat, 'p50_ms')} / {_ms(lat, 'p99_ms')} / {_ms(lat, 'max_ms')} "
            f"| {r['failed']} | {_cpu(r['cpu_percent'])} | {per} |"
        )
    return "\n".join(lines)


def catchup_tables(document: dict[str, Any]) -> str:
    """Time from login until every content is held, with its parts and the checks."""
    lines = [
        "| target | messages | received | login / index done / all contents (s) "
        "| index pages, content requests | duplicates, out of order | CPU, % of one core |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for r in document["results"]:
        lines.append(
            f"| {r['target']} | {r['config']['messages']:,} | {r['received']:,} "
            f"| {r['login_seconds']:.3f} / {r['index_seconds']:.3f} / {r['total_seconds']:.3f} "
            f"| {r['index_pages']}, {r['content_requests']} "
            f"| {r['duplicates']}, {r['out_of_order']} | {_cpu(r['cpu_percent'])} |"
        )
    return "\n".join(lines)


RENDERERS = {
    "chat": chat_tables,
    "group": group_tables,
    "connections": connection_tables,
    "logins": login_tables,
    "catchup": catchup_tables,
}


def main(argv: list[str] | None = None) -> None:
    """Print the tables of every result file found, unpinned and pinned."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    for base, render in RENDERERS.items():
        for name in (base, f"{base}-pinned"):
            path = args.dir / f"{name}.json"
            if not path.exists():
                continue
            document = json.loads(path.read_text())
            print(f"### {name}: {document['command']} ({document['finished']})\n")
            print(render(document))
            print()
    for path in sorted((args.dir / "profile").glob("profile-*.json")):
        summary = json.loads(path.read_text())
        print(f"### profile: {summary['workload']} on {summary['target']} ({path.name})")
        print(format_profile(summary))
        print()


if __name__ == "__main__":
    main()
