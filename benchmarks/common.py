"""Shared by the benchmark scripts: print a Markdown table and keep it with the raw rows."""
from __future__ import annotations

import json
from pathlib import Path


def save_table(out_dir: str | Path, rows: list[dict], lines: list[str]) -> str:
    """Print the table ``lines`` and write ``table.md`` and ``results.json`` (``rows``) to ``out_dir``."""
    table = "\n".join(lines)
    print(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    (out / "table.md").write_text(table + "\n")
    return table
