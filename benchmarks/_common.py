"""Shared helpers of the benchmark scripts: the machine's description and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def machine_description() -> str:
    """CPU model, cores, memory and Python version, in one line."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown memory"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {memory}, Python {platform.python_version()}, {platform.system()}"


def replace_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the `## title` section of a Markdown file, keeping the others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    heading = f"## {title}"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = f"{heading}\n\n{body.strip()}\n\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    os.replace(tmp, path)


def markdown_table(rows: list[tuple[str, str, str]]) -> str:
    """A measurement | result | note table, padded for reading in a terminal."""
    width = max(len(row[0]) for row in rows)
    lines = [f"| {'measurement'.ljust(width)} | result | note |", f"|{'-' * (width + 2)}|---|---|"]
    lines += [f"| {name.ljust(width)} | {value} | {note} |" for name, value, note in rows]
    return "\n".join(lines)


def publish(
    rows: list[tuple[str, str, str]], *, section: str, command: str, write: bool, notes: str = ""
) -> None:
    """Print the table and, unless told not to, put it with the command, machine and notes in BENCHMARKS.md."""
    table = markdown_table(rows)
    print(table)
    if write:
        body = f"Command: `{command}`.\n\nMachine: {machine_description()}\n\n{table}\n\n{notes}\n"
        replace_section(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", section, body)
