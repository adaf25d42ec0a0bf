//! Executes every workshop notebook (`notebooks/*.ipynb`) headless and fails if a cell errors;
//! each notebook asserts that its failure appears and that its fix removes it.
//!
//! Python: the virtual environment `target/notebook-venv` when it holds the packages of
//! `notebooks/requirements.txt` (its `requirements.stamp` is a copy of that file, as `.ci/run`
//! leaves it), else `python3` if it can import them, else the test creates the environment and
//! pip-installs the requirements into it (a minute, once). The notebooks run against this build's
//! `w3sim` (the test profile is optimised) through `W3SIM`, into a temporary directory: the
//! committed notebooks and their saved outputs are never rewritten.

use std::path::{Path, PathBuf};
use std::process::Command;

const IMPORTS: &str = "import nbclient, nbformat, ipykernel, pandas, matplotlib, PIL";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn can_import(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", IMPORTS])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn system_python() -> PathBuf {
    for name in ["python3", "python"] {
        let ok = Command::new(name)
            .args([
                "-c",
                "import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return PathBuf::from(name);
        }
    }
    panic!(
        "the notebook tests need Python 3.11 or later with its venv module on PATH as `python3`: \
         on Debian/Ubuntu `apt-get install python3 python3-venv`, on macOS `brew install python`, \
         otherwise https://www.python.org/downloads/ (see notebooks/README.md)"
    );
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(status.success(), "{what} failed ({status})");
}

/// A Python interpreter that can run the notebooks.
fn python() -> PathBuf {
    let requirements = repo().join("notebooks").join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("{}: {e}", requirements.display()));
    let venv = target_dir().join("notebook-venv");
    let stamp = venv.join("requirements.stamp");
    let py = venv_python(&venv);
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && can_import(&py) {
        return py;
    }
    let system = system_python();
    if can_import(&system) {
        return system;
    }
    eprintln!(
        "creating {} and installing notebooks/requirements.txt (about a minute, once)",
        venv.display()
    );
    run(
        Command::new(&system)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r notebooks/requirements.txt",
    );
    std::fs::write(&stamp, &wanted).unwrap();
    assert!(
        can_import(&py),
        "{} cannot import the notebooks' packages",
        py.display()
    );
    py
}

#[test]
fn every_notebook_runs_its_assertions_hold_and_it_prints_its_saved_outputs() {
    let root = repo();
    let notebooks: Vec<_> = std::fs::read_dir(root.join("notebooks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ipynb"))
        .collect();
    assert!(
        notebooks.len() >= 6,
        "an introduction and one notebook per failure mode: {notebooks:?}"
    );
    let python = python();
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new(&python)
        .arg(root.join("notebooks").join("run_notebooks.py"))
        // Saved outputs that a run no longer prints are stale teaching material.
        .arg("--compare")
        .arg("--out")
        .arg(tmp.path().join("executed"))
        .env("W3SIM", env!("CARGO_BIN_EXE_w3sim"))
        .env("W3SIM_NB_OUT", tmp.path().join("runs"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&root)
        .status()
        .expect("run_notebooks.py starts");
    assert!(
        status.success(),
        "a notebook failed (its cell and error are printed above)"
    );
    for n in &notebooks {
        assert!(
            tmp.path().join("executed").join(n).is_file(),
            "{n} was not executed"
        );
    }
}
