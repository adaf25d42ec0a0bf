"""Small helpers shared by the workshop notebooks: run w3sim, read what it wrote, show it.

    import w3sim_nb as w
    base = w.run("thread-injection-burst")                         # experiments/<name>.toml
    fix = w.run("thread-injection-burst", set={"thread_pool.min_worker_threads": 200}, label="min200")
    base.dashboard(); base.explain()
    base.summary["outcomes"]["503_queue_full"], base.get("gc.max_pause_ms")
    w.compare([base, fix], "System.Runtime\\ThreadPool Thread Count")

The binary is `$W3SIM` if set, else `<repo>/target/release/w3sim`, built with
`cargo build --release` if it is missing. Runs go to `$W3SIM_NB_OUT` if set, else
`<repo>/out/notebooks/<label>`. Every scenario carries its seed, so a run gives the same
numbers every time: the outputs saved in the notebooks are what re-executing them prints.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

# The repository checkout: its experiments/, its target/ and the working directory of every
# run. $W3SIM_REPO points copies of the notebooks kept elsewhere (a workshop folder) at it.
REPO = Path(os.environ.get("W3SIM_REPO") or Path(__file__).resolve().parent.parent)
EXPERIMENTS = REPO / "experiments"

_binary: Path | None = None


def binary() -> Path:
    """The w3sim executable: $W3SIM, else target/release/w3sim (built if missing)."""
    global _binary
    if _binary is not None:
        return _binary
    env = os.environ.get("W3SIM")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"W3SIM={env} is not a file")
    else:
        path = REPO / "target" / "release" / ("w3sim.exe" if os.name == "nt" else "w3sim")
        if not path.is_file():
            if shutil.which("cargo") is None:
                raise FileNotFoundError(
                    f"{path} is missing and cargo is not installed: install Rust "
                    "(https://rustup.rs) and run `cargo build --release` in the repository"
                )
            print("building w3sim (cargo build --release, about a minute the first time)…")
            subprocess.run(["cargo", "build", "--release", "--bin", "w3sim"], cwd=REPO, check=True)
    _binary = path
    return path


def out_root() -> Path:
    return Path(os.environ.get("W3SIM_NB_OUT") or REPO / "out" / "notebooks")


def w3sim(*args: str) -> str:
    """Runs `w3sim ARGS…` and returns its standard output; raises with its stderr on failure."""
    p = subprocess.run([str(binary()), *map(str, args)], capture_output=True, text=True, cwd=REPO)
    if p.returncode != 0:
        raise RuntimeError(f"w3sim {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _get(node, parts: list[str], default):
    if not parts:
        return node
    if isinstance(node, list) and parts[0].isdigit() and int(parts[0]) < len(node):
        return _get(node[int(parts[0])], parts[1:], default)
    if isinstance(node, dict):
        # The shortest key first: "gauges" then "aspnet.Requests Queued" (a key with a dot).
        for n in range(1, len(parts) + 1):
            key = ".".join(parts[:n])
            if key in node:
                found = _get(node[key], parts[n:], _MISSING)
                if found is not _MISSING:
                    return found
    return default


_MISSING = object()


class Run:
    """One run's directory and what w3sim wrote there."""

    def __init__(self, label: str, directory: Path, overrides: list[str]):
        self.label = label
        self.dir = directory
        self.overrides = overrides
        self.summary: dict = json.loads((directory / "summary.json").read_text())
        self._ts: pd.DataFrame | None = None

    # --- reading -----------------------------------------------------------------
    @property
    def ts(self) -> pd.DataFrame:
        """timeseries.csv, indexed by simulated time in seconds; columns are perfmon counters."""
        if self._ts is None:
            self._ts = pd.read_csv(self.dir / "timeseries.csv").set_index("time_s")
        return self._ts

    @property
    def events(self) -> pd.DataFrame:
        """events.csv: the marked moments (recycles, failovers, …)."""
        return pd.read_csv(self.dir / "events.csv")

    def get(self, path: str, default=None):
        """A summary.json field by dotted path: run.get("outgoing.wsaenobufs").

        Keys that contain dots themselves work too: run.get("gauges.aspnet.Requests Queued.peak").
        """
        return _get(self.summary, path.split("."), default)

    def outcome(self, name: str) -> int:
        """Whole-run count of one outcome (`ok`, `503_queue_full`, `wsaenobufs`, …)."""
        return int(self.summary["outcomes"].get(name, 0))

    @property
    def n503(self) -> int:
        """Every 503, whatever its reason."""
        return sum(int(v) for k, v in self.summary["outcomes"].items() if k.startswith("503"))

    def column(self, name: str) -> pd.Series:
        """One time-series column, by its full perfmon name or an unambiguous part of it."""
        if name in self.ts.columns:
            return self.ts[name]
        hits = [c for c in self.ts.columns if name.lower() in c.lower()]
        if len(hits) != 1:
            raise KeyError(f"{name!r} matches {hits or 'no column'}")
        return self.ts[hits[0]]

    # --- showing -----------------------------------------------------------------
    def dashboard(self, colors: int = 48):
        """w3sim's own dashboard of the run (`w3sim plot DIR --format png`), shown inline."""
        from IPython.display import Image, display
        from PIL import Image as PILImage

        png = self.dir / "dashboard.png"
        w3sim("plot", self.dir, "--format", "png", "--out", png)
        # A palette of a few dozen colours keeps the picture sharp and the saved notebook small.
        buf = io.BytesIO()
        PILImage.open(png).convert("RGB").quantize(colors).save(buf, format="PNG", optimize=True)
        display(Image(data=buf.getvalue()))

    def explain(self) -> None:
        """Prints `w3sim explain DIR`: the first limit reached, what it caused, when each cleared."""
        print(w3sim("explain", self.dir).rstrip())

    def brief(self) -> str:
        s = self.summary
        o = {k: v for k, v in s["outcomes"].items() if v}
        lat = s["latency_ms"]["all"]
        parts = [
            f"{self.label}: {s['requests']['arrived']} requests, outcomes {o}",
            f"p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms",
            f"CPU {s['cpu_utilization_pct']:.1f} %",
        ]
        if s.get("first_limit"):
            fl = s["first_limit"]
            parts.append(f"first limit {fl['limit']} at {fl['at_s']:.0f} s")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return self.brief()


def run(
    scenario: str,
    set: dict | list | None = None,
    duration: str | None = None,
    seed: int | None = None,
    label: str | None = None,
) -> Run:
    """Runs experiments/<scenario>.toml (or a path) with `--set` overrides; returns the Run.

    `set` is a dict {"tcp.tcp_timed_wait_delay": "30s"} or a list of "key=value" strings.
    """
    path = Path(scenario)
    if not path.suffix:
        path = EXPERIMENTS / f"{scenario}.toml"
    elif not path.is_absolute():
        path = path if path.exists() else EXPERIMENTS / path
    if isinstance(set, dict):
        overrides = [f"{k}={_value(v)}" for k, v in set.items()]
    else:
        overrides = list(set or [])
    label = label or path.stem
    if not re.fullmatch(r"[\w.-]+", label):
        raise ValueError(f"label {label!r}: use letters, digits, '.', '-' or '_'")
    directory = out_root() / label
    if directory.exists():
        shutil.rmtree(directory)
    args = ["run", path, "--out", directory, "-q"]
    for o in overrides:
        args += ["--set", o]
    if duration:
        args += ["--duration", duration]
    if seed is not None:
        args += ["--seed", str(seed)]
    w3sim(*args)
    return Run(label, directory, overrides)


FIELDS = {
    "arrived": "requests.arrived",
    "ok": "outcomes.ok",
    "503_queue_full": "outcomes.503_queue_full",
    "p50_ms": "latency_ms.all.p50",
    "p99_ms": "latency_ms.all.p99",
    "max_ms": "latency_ms.all.max",
    "cpu_pct": "cpu_utilization_pct",
}


def table(runs: list[Run], fields: dict[str, str] | list[str] | None = None) -> pd.DataFrame:
    """A side-by-side table of summary.json fields, one row per run.

    `fields` maps a column name to a dotted summary path, or is a list of dotted paths.
    """
    if fields is None:
        fields = FIELDS
    if isinstance(fields, list):
        fields = {f.split(".")[-1] if f.count(".") else f: f for f in fields}
    rows = {r.label: {name: r.get(p) for name, p in fields.items()} for r in runs}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "run"
    return df.round(1)


def compare(runs: list[Run], *columns: str, title: str | None = None, xlim=None, ylim=None, logy=False):
    """Draws time-series columns of several runs, one panel per column, runs overlaid."""
    fig, axes = plt.subplots(len(columns), 1, figsize=(9, 2.6 * len(columns)), sharex=True, squeeze=False)
    for ax, col in zip(axes[:, 0], columns):
        for r in runs:
            s = r.column(col)
            ax.plot(s.index, s.values, label=r.label, lw=1.4)
        ax.set_title(runs[0].column(col).name, fontsize=10)
        ax.grid(alpha=0.3)
        if logy:
            ax.set_yscale("symlog")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("simulated time (s)")
    if xlim is not None:
        axes[-1, 0].set_xlim(*xlim)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def columns(run: Run, pattern: str = "") -> list[str]:
    """The time-series columns whose name contains `pattern` (case-insensitive)."""
    return [c for c in run.ts.columns if pattern.lower() in c.lower()]
