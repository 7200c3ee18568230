"""Regenerate ``benchmarks/RESULTS.md`` from ``headline.md`` and the per-area result files.

Each area's benchmark owner records figures (machine, command, figure) in its own file here;
this script only concatenates them under one heading each, demoting their headings one level.

    python benchmarks/results/merge.py
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
AREAS = (
    ("core.md", "Core library (issue 2)"),
    ("labeling.md", "Labeling (issues 3 and 14)"),
    ("training.md", "Training (issue 4)"),
    ("evaluation.md", "Evaluation (issue 5)"),
    ("delivery.md", "Delivery (issue 10)"),
    ("fetch.md", "Fetching SA-1B (issue 9)"),
    ("cpu_budget.md", "CPU budget per image and cores per GPU (issue 16)"),
    ("gpu.md", "GPU suite (issues 8 and 16)"),
)


def merged() -> str:
    parts = [(HERE / "headline.md").read_text().rstrip() + "\n"]
    for name, title in AREAS:
        path = HERE / name
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]  # the area file's own title is replaced by ours
        lines = ["#" + line if re.match(r"^#{1,5} ", line) else line for line in lines]
        body = "\n".join(lines).strip()
        parts.append(f"## {title}\n\nSource: `benchmarks/results/{name}`.\n\n{body}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    (HERE.parent / "RESULTS.md").write_text(merged())
