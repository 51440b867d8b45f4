"""Crash consistency: kill the writing process at every fault point of every write path.

For each scenario in :mod:`tests.reliability.driver` the points it passes
are traced, then for each (point, n-th pass) the write runs in a subprocess
that dies there (``os._exit(137)``, like ``kill -9``). ``casvault fsck
--repair`` must then leave a store that ``casvault fsck`` calls clean, that
the independent checker finds consistent, that still holds every write
acknowledged before the crash, and that accepts new writes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.reliability import consistency, driver

CORE = Path(__file__).resolve().parents[2] / "casvault"
# faults.point("name"), faults.point(f"{x}.name"), point="a.b" (atomic writes; points are dotted)
_POINT_CALL = re.compile(r"""faults\.point\(\s*(f?)["']([^"']+)["']\s*\)|\bpoint=(f?)["']([^"'.]+\.[^"']+)["']""")


def source_points() -> dict[str, re.Pattern[str]]:
    """Every fault point named in casvault/, as a pattern (f-string parts match any name)."""
    found: dict[str, re.Pattern[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        for m in _POINT_CALL.finditer(path.read_text()):
            is_f, name = (m.group(1), m.group(2)) if m.group(2) else (m.group(3), m.group(4))
            if is_f:
                pattern = re.sub(r"\\\{[^}]*\\\}", "[a-z0-9_]+", re.escape(name))
            else:
                pattern = re.escape(name)
            found[name] = re.compile(pattern)
    return found


def _traces() -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory(prefix="casvault-trace-") as tmp:
        return {name: driver.trace(name, Path(tmp) / name) for name in driver.SCENARIOS}


TRACES = _traces()


def _cases() -> list[tuple[str, str, int]]:
    cases = []
    for scenario, points in TRACES.items():
        seen: dict[str, int] = {}
        for point in points:
            seen[point] = seen.get(point, 0) + 1
            cases.append((scenario, point, seen[point]))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A store with the acknowledged setup writes, and its state file beside it."""
    base = tmp_path_factory.mktemp("crash-template")
    state = driver.setup(driver.open_store(base / "root", fsync=False))
    (base / "state.json").write_text(json.dumps(state))
    return base


def _copy(template: Path, dest: Path) -> tuple[Path, dict]:
    # NOTE: cp -a keeps the hardlinks between blobs and projections.
    subprocess.run(["cp", "-a", str(template / "root"), str(dest / "root")], check=True)
    shutil.copy(template / "state.json", dest / "state.json")
    return dest / "root", json.loads((dest / "state.json").read_text())


def _run(root: Path, scenario: str, faults: str = "") -> subprocess.CompletedProcess:
    env = consistency.clean_env(**({"CASVAULT_FAULTS": faults} if faults else {}))
    return subprocess.run(
        [sys.executable, "-m", "tests.reliability.driver", str(root), str(root.parent / "state.json"), scenario],
        capture_output=True, text=True, timeout=60, env=env, cwd=consistency.REPO,
    )


def _state(record) -> tuple:
    return (record.status, tuple(record.tags), record.favorite)


def check_after(root: Path, state: dict, scenario: str, *, done: bool | None) -> None:
    """The store is consistent and holds every acknowledged write; ``done``: the crashing write returned."""
    _op, target_key, target_state = driver.SCENARIOS[scenario]
    target = state["ids"].get(target_key) if target_key else None
    rep = consistency.check(root)
    assert rep.problems == [], "\n".join(rep.problems)
    for rid, expected in state["states"].items():
        owner = state["owners"][rid]
        record = rep.records.get(owner, {}).get(rid)
        got = _state(record) if record is not None else None
        allowed = [tuple(expected[:1]) + (tuple(expected[1]), expected[2])]
        if rid == target:
            allowed = [allowed[0], target_state] if done is None else [target_state if done else allowed[0]]
        assert got in allowed, f"acknowledged record {rid}: {got} not in {allowed}"
    setup_ids = set(state["states"])
    new = {rid for recs in rep.records.values() for rid in recs} - setup_ids
    assert len(new) <= 1, f"more than one new record after one write: {new}"
    if done and target_key is None:
        assert len(new) == 1, "the acknowledged new record is missing"


def _follow_up(root: Path) -> None:
    """The repaired store takes new writes, and stays consistent."""
    store = driver.open_store(root, fsync=False)
    made = store.ingest(driver.png(500), driver.OWNER, prompt="after the crash").record
    store.trash(driver.OWNER, made.id)
    store.restore(driver.OWNER, made.id)
    rep = consistency.check(root)
    assert rep.problems == [], "\n".join(rep.problems)
    assert made.id in rep.ids(driver.OWNER, "active")


def test_every_point_in_the_core_is_reached_by_a_scenario():
    """A new fault point in casvault/ fails here until a scenario reaches it (and so crashes there)."""
    reached = {p for points in TRACES.values() for p in points}
    missing = [name for name, pattern in source_points().items() if not any(pattern.fullmatch(p) for p in reached)]
    assert missing == [], f"fault points no scenario reaches: {missing}"
    assert len(CASES) >= 40


@pytest.mark.parametrize("scenario", sorted(driver.SCENARIOS))
def test_scenario_without_a_crash(template, tmp_path, scenario):
    root, state = _copy(template, tmp_path)
    proc = _run(root, scenario)
    assert proc.returncode == 0, proc.stderr
    check_after(root, state, scenario, done=True)


@pytest.mark.parametrize(("scenario", "point", "nth"), CASES, ids=[f"{s}-{p}@{n}" for s, p, n in CASES])
def test_crash_then_repair(template, tmp_path, scenario, point, nth):
    root, state = _copy(template, tmp_path)
    proc = _run(root, scenario, f"{point}=exit@{nth}")
    assert proc.returncode == 137, f"the write did not die at {point}@{nth}: {proc.returncode} {proc.stderr[-2000:]}"
    assert proc.stdout == "", "the crashed write acknowledged something"
    repair = consistency.run_cli(root, "fsck", "--repair")
    assert "Traceback" not in repair.stderr, repair.stderr
    assert repair.returncode in (0, 1), repair.stdout + repair.stderr
    verdict = consistency.run_cli(root, "fsck")
    assert verdict.returncode == 0, f"fsck after --repair: {verdict.stdout}{verdict.stderr}"
    check_after(root, state, scenario, done=None)
    _follow_up(root)


def test_checker_finds_half_visible_records(template, tmp_path):
    """The checker is not blind: each kind of damage is reported."""
    root, state = _copy(template, tmp_path)
    assert consistency.check(root).problems == []
    store = driver.open_store(root, fsync=False)
    a = store.get(driver.OWNER, state["ids"]["a"])
    image, sidecar, thumb = store.layout.paths(a)
    image.unlink()
    stray = sidecar.with_name("0" * 32 + ".png")
    stray.write_bytes(b"x")
    ghost = store.layout.manifest_path(driver.OTHER)
    with open(ghost, "ab") as fh:
        fh.write(ghost.read_bytes().replace(state["ids"]["d"].encode(), b"f" * 32))
    problems = "\n".join(consistency.check(root).problems)
    assert "without its projection" in problems
    assert "projection without a sidecar" in problems
    assert "which has no sidecar" in problems
