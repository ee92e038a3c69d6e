"""Draws bench/results/fork.png from the JSON that fork.bench.ps1 writes."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})

names, values = list(data["times"]), list(data["times"].values())
bars = left.barh(names, values, color=["#b04a4a", "#3c7dbd", "#3c7dbd", "#3c7dbd", "#b04a4a", "#3c7dbd"])
left.set_xscale("log")
left.invert_yaxis()
left.set_xlabel("milliseconds (log scale)")
left.set_title(f"Time to an answering agent / per call ({data['accel']})")
for bar, v in zip(bars, values):
    left.text(bar.get_width() * 1.1, bar.get_y() + bar.get_height() / 2, f"{v:,.1f} ms" if v < 100 else f"{v:,.0f} ms", va="center")
left.set_xlim(min(values) / 2, max(values) * 8)

mem_names, mem_values = list(data["memory"]), list(data["memory"].values())
bars = right.barh(mem_names, mem_values, color=["#3c7dbd", "#3c7dbd", "#888888", "#888888"])
right.invert_yaxis()
right.set_xlabel("MiB, mean of 16 idle children")
right.set_title(f"Memory per idle child (guest RAM {data['guest_mib']} MiB)")
for bar, v in zip(bars, mem_values):
    right.text(bar.get_width() + max(mem_values) * 0.02, bar.get_y() + bar.get_height() / 2, f"{v:.1f}", va="center")
right.set_xlim(0, max(mem_values) * 1.25)

fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
