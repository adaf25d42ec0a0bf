"""Executes the workshop notebooks headless; fails if any cell errors (assertions included).

    python notebooks/run_notebooks.py                    # execute all, keep the files as they are
    python notebooks/run_notebooks.py --write            # execute all and save them with their outputs
    python notebooks/run_notebooks.py --out DIR 02-*.ipynb   # executed copies into DIR
    python notebooks/run_notebooks.py --compare          # and fail if a printed output differs
                                                         # from the one saved in the notebook

sim/tests/notebooks.rs runs it with --out into a temporary directory, so tests never rewrite
the committed notebooks. Every notebook runs with notebooks/ as its working directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NB_DIR = Path(__file__).resolve().parent


def execute(path: Path, timeout: int) -> tuple[nbformat.NotebookNode, float]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(NB_DIR)}},
        record_timing=False,
    )
    t0 = time.monotonic()
    client.execute()
    return nb, time.monotonic() - t0


def printed(nb: nbformat.NotebookNode) -> list[str]:
    """Each code cell's printed text (streams and plain-text results), with the run
    directories and the checkout's path replaced: what a reader compares with the run."""
    repo = str(NB_DIR.parent)
    roots = [os.environ.get("W3SIM_NB_OUT") or "", str(NB_DIR.parent / "out" / "notebooks")]
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            elif "data" in o and "text/plain" in o["data"]:
                parts.append(o["data"]["text/plain"])
        text = "".join(parts)
        for r in filter(None, roots):
            text = text.replace(r, "<runs>")
        texts.append(text.replace(repo, "<repo>"))
    return texts


def differences(saved: list[str], now: list[str]) -> list[str]:
    """The code cells whose printed text changed, with their first differing line."""
    out = []
    for i, (a, b) in enumerate(zip(saved, now)):
        if a != b:
            la, lb = a.splitlines(), b.splitlines()
            k = next((j for j, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
            out.append(
                f"  code cell {i + 1}, line {k + 1}: saved {la[k] if k < len(la) else '(nothing)'!r}\n"
                f"  {' ' * len(f'code cell {i + 1}, line {k + 1}: ')}now   {lb[k] if k < len(lb) else '(nothing)'!r}"
            )
    if len(saved) != len(now):
        out.append(f"  {len(saved)} code cells saved, {len(now)} now")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: every notebooks/*.ipynb)")
    ap.add_argument("--write", action="store_true", help="save each notebook in place with its outputs")
    ap.add_argument("--out", type=Path, help="write the executed notebooks into this directory")
    ap.add_argument("--timeout", type=int, default=300, help="seconds a cell may take (default 300)")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="fail if a cell prints something other than what the saved notebook shows",
    )
    args = ap.parse_args()

    paths = [Path(p) if Path(p).exists() else NB_DIR / p for p in args.notebooks]
    if not paths:
        paths = sorted(NB_DIR.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {NB_DIR}", file=sys.stderr)
        return 1
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    failed = []
    for path in paths:
        try:
            nb, secs = execute(path, args.timeout)
        except CellExecutionError as e:
            print(f"FAIL {path.name}\n{e}", file=sys.stderr)
            failed.append(path.name)
            continue
        except Exception as e:  # a kernel that died, a timeout
            print(f"FAIL {path.name}: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(path.name)
            continue
        if args.compare:
            diff = differences(printed(nbformat.read(path, as_version=4)), printed(nb))
            if diff:
                print(
                    f"STALE {path.name}: its saved outputs are not what it prints now "
                    f"(re-save it with --write {path.name}):\n" + "\n".join(diff),
                    file=sys.stderr,
                )
                failed.append(path.name)
                continue
        print(f"ok   {path.name} ({secs:.1f} s)", flush=True)
        if args.write:
            nbformat.write(nb, path)
        if args.out:
            nbformat.write(nb, args.out / path.name)

    if failed:
        print(f"{len(failed)} of {len(paths)} notebooks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(paths)} notebooks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
