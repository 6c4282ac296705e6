"""Draws docs/bench.png: ours against the peers, from bench summary lines.

Usage: chart.py RESULTS.txt OUT.png

RESULTS.txt holds the last lines `make bench-speed`, `bench-compact`,
`bench-recompute` and `bench-serve` printed (DESIGN §7 summaries, one per
line; lines starting with # are notes, and the first such note becomes the
chart's subtitle). Each panel is one comparison measured in one run on the
same data: the figure the summary line carries for ours and for its peer.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse(path):
    notes, lines = [], {}
    for raw in open(path, encoding="utf-8"):
        raw = raw.strip()
        if not raw:
            continue
        if raw.startswith("#"):
            notes.append(raw.lstrip("# "))
            continue
        if not raw.startswith("bench ") or ":" not in raw:
            continue
        name, rest = raw[len("bench "):].split(":", 1)
        kv = {}
        for f in rest.split():
            if "=" in f:
                k, v = f.split("=", 1)
                try:
                    kv[k] = float(v)
                except ValueError:
                    kv[k] = v
        name = name.strip()
        if kv.get("redis") == "cluster":
            name += " cluster"  # bench speed's second line: the same run on the Redis Cluster
        lines[name] = kv
    return notes, lines


def label(val):
    """A bar's figure: whole numbers with thousands separators from 100 up
    (1,106 rather than 1.11e+03), three significant digits below."""
    return "{:,.0f}".format(val) if val >= 100 else "%.3g" % val


def panels(lines):
    """(title, unit, [(label, value)], note) per comparison present."""
    out = []
    s = lines.get("speed")
    if s:
        bars = [("ours", s["eps"] / 1e3)]
        if isinstance(s.get("peer_eps"), float) and s["peer_eps"] == s["peer_eps"]:
            bars.append(("Kafka Streams", s["peer_eps"] / 1e3))
        if "floor_eps" in s:
            bars.append(("floor\n(fetch+decode)", s["floor_eps"] / 1e3))
        out.append(("speed layer\n(Kafka → Redis)", "thousand events/s (higher is better)", bars,
                    "peer_ratio %.1f, floor_ratio %.2f" % (s.get("peer_ratio", float("nan")), s.get("floor_ratio", float("nan")))))
    c = lines.get("compact")
    if c and "peer_eps" in c:
        out.append(("compaction\n(ours Kafka → S3, DuckDB file → file)", "thousand events/s (higher is better)",
                    [("ours", c["eps"] / 1e3), ("DuckDB", c["peer_eps"] / 1e3)],
                    "peer_ratio %.2f, threads %d" % (c["peer_ratio"], c.get("threads", 0))))
    r = lines.get("recompute")
    if r:
        out.append(("recompute\n(24 h of raw files → view)", "seconds (lower is better)",
                    [("ours", r["ours_s"]), ("DuckDB", r["duckdb_s"])],
                    "ratio %.2f, threads %d" % (r["ratio"], r.get("threads", 0))))
    v = lines.get("serve")
    if v and "single_ms" in v:
        out.append(("one uncached query", "ms (lower is better)",
                    [("ours", v["single_ms"]), ("DuckDB\n(raw files)", v["duckdb_ms"])],
                    "64 clients: p99 %.0f ms, %.0f req/s" % (v.get("uncached_p99_ms", 0), v.get("uncached_rps", 0))))
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    notes, lines = parse(src)
    ps = panels(lines)
    if not ps:
        sys.exit("chart: no summary lines in " + src)
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), 4.4))
    if len(ps) == 1:
        axes = [axes]
    colors = ["#2f6db5", "#d9822b", "#8a8a8a"]
    for ax, (title, unit, bars, note) in zip(axes, ps):
        labels = [b[0] for b in bars]
        values = [b[1] for b in bars]
        rects = ax.bar(labels, values, color=colors[: len(bars)])
        for rect, val in zip(rects, values):
            ax.annotate(label(val), (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(note, fontsize=8)
        ax.margins(y=0.15)
    fig.suptitle("lambdalake vs the peers, each pair in one run on the same data" + ("\n" + notes[0] if notes else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
