"""Run every benchmark (`make bench`) and print one line per quality bar of SPEC section 9.

Each `bench/bench_*.py` module has `run()`, which returns a list of rows
`(name, measured, floor, comment)`: `floor` is the figure measured against (a floor timed
in the same run, or a fixed target), and the comment says which way is better ("higher is
better" or "lower is better", so this script can say so too). A row may carry a fifth item,
"higher" or "lower", to say it explicitly. A module that fails to import or to run is
reported with its error and the others still run; the exit status is then 1.

    python bench/run.py            # every module
    python bench/run.py compose    # only bench_compose.py
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # the project, for `bench.*` and the packages

BETTER_RE = re.compile(r"\b(higher|lower|more|less|faster|fewer)\b[^.;,]*\bbetter\b", re.I)
SAYS = {"higher": "higher", "more": "higher", "faster": "higher",
        "lower": "lower", "less": "lower", "fewer": "lower"}


def modules(selected: list[str]) -> list[Path]:
    paths = sorted(HERE.glob("bench_*.py"))
    if selected:
        paths = [p for p in paths if p.stem.removeprefix("bench_") in selected
                 or p.stem in selected]
    return paths


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"bench.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def better(row) -> str:
    """Return "higher", "lower" or "" for a row, from its fifth item or its comment."""
    if len(row) > 4 and row[4] in ("higher", "lower"):
        return row[4]
    match = BETTER_RE.search(str(row[3]))
    return SAYS[match.group(1).lower()] if match else ""


def number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def line(row) -> str:
    name, measured, floor, comment = row[:4]
    way = better(row)
    try:
        ratio = f"{measured / floor:.2f}x"
    except (TypeError, ZeroDivisionError):
        ratio = "-"
    direction = {"higher": "(higher is better)", "lower": "(lower is better)"}.get(
        way, "(see comment)")
    return (f"{name:<44} {number(measured):>12} {number(floor):>12} {ratio:>8} "
            f"{direction:<19} {comment}")


def main(argv: list[str]) -> int:
    paths = modules(argv)
    if not paths:
        print(f"no benchmark matches {' '.join(argv) or 'bench/bench_*.py'}", file=sys.stderr)
        return 1
    print(f"{'quality bar':<44} {'measured':>12} {'floor/target':>12} {'ratio':>8} "
          f"{'':<19} comment")
    print("ratio = measured / floor; a figure is compared with its floor or target measured "
          "or set in the same row")
    failed = []
    for path in paths:
        started = time.perf_counter()
        try:
            rows = load(path).run()
        except BaseException as e:  # report any module's failure; run the others
            if isinstance(e, KeyboardInterrupt):
                raise
            failed.append(path.name)
            detail = traceback.format_exception_only(type(e), e)[-1].strip()
            print(f"{path.name}: FAILED: {detail}", flush=True)
            where = traceback.extract_tb(e.__traceback__)
            if where:
                print(f"    at {where[-1].filename}:{where[-1].lineno}", flush=True)
            continue
        for row in rows:
            print(line(row), flush=True)
        print(f"    ({path.name}: {time.perf_counter() - started:.1f} s)", flush=True)
    if failed:
        print(f"{len(failed)} benchmark module(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
