"""Draws bench/results/fork.png from the JSON that fork.bench.ps1 writes."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
fig, ((scale, stages), (times, memory)) = plt.subplots(2, 2, figsize=(12, 8.5))

counts = [int(n) for n in data["fork"]]
walls = [data["fork"][n] for n in data["fork"]]
scale.plot(counts, walls, "o-", color="#3c7dbd", label="fork: all agents replying")
scale.plot([100], [data["first_eval_100"]], "s", color="#b04a4a", label="100: every child answered an eval")
scale.set_xlabel("children forked at once")
scale.set_ylabel("milliseconds")
scale.set_title(f"Fork wall clock ({data['accel']}); marginal child {data['marginal']:.1f} ms")
for n, w in zip(counts, walls):
    scale.annotate(f"{w:,.0f}", (n, w), textcoords="offset points", xytext=(4, -12))
scale.legend(loc="upper left")

names = ["VmmStart", "ControlConnect", "StateLoad", "Resume", "AgentReady", "Engine"]
colors = ["#3c7dbd", "#8fb8de", "#4a9b6e", "#a4d4b4", "#b04a4a", "#888888"]
groups = list(data["stages"])
bottom = [0.0] * len(groups)
for name, color in zip(names, colors):
    values = [data["stages"][g][name] or 0.0 for g in groups]
    stages.bar([f"N = {g}" for g in groups], values, bottom=bottom, color=color, label=name)
    bottom = [b + v for b, v in zip(bottom, values)]
stages.set_ylabel("milliseconds, median child")
stages.set_title("Where a child's start goes")
stages.legend(fontsize=8)

t = {"cold boot": data["cold"], "fork 1": data["fork"]["1"], "exec python3 -c": data["exec_ms"], "eval": data["eval_ms"]}
bars = times.barh(list(t), list(t.values()), color=["#b04a4a", "#3c7dbd", "#b04a4a", "#3c7dbd"])
times.set_xscale("log")
times.invert_yaxis()
times.set_xlabel("milliseconds (log scale)")
times.set_title("Cold boot vs fork, exec vs eval")
for bar, v in zip(bars, t.values()):
    times.text(bar.get_width() * 1.1, bar.get_y() + bar.get_height() / 2, f"{v:,.1f} ms" if v < 100 else f"{v:,.0f} ms", va="center")
times.set_xlim(min(t.values()) / 2, max(t.values()) * 8)

mem_names, mem_values = list(data["memory"]), list(data["memory"].values())
bars = memory.barh(mem_names, mem_values, color=["#3c7dbd", "#888888", "#888888", "#888888"])
memory.invert_yaxis()
memory.set_xlabel("MiB, mean of 16 idle children")
memory.set_title(f"Idle child memory ({data['guest_mib']} MiB guest)\nidle CPU {data['idle']['CorePercent']:.3f} % of a core")
for bar, v in zip(bars, mem_values):
    memory.text(bar.get_width() + max(mem_values) * 0.02, bar.get_y() + bar.get_height() / 2, f"{v:.1f}", va="center")
memory.set_xlim(0, max(mem_values) * 1.25)

fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
