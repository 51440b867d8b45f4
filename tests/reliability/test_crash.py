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


MAX_PASS = 2  # a point passed once per record (merge, restore) is crashed at on its first two passes


def _cases() -> list[tuple[str, str, int]]:
    cases = []
    for scenario, points in TRACES.items():
        seen: dict[str, int] = {}
        for point in points:
            seen[point] = seen.get(point, 0) + 1
            if seen[point] <= MAX_PASS:
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


# NOTE: a killed process loses nothing the page cache holds; fsync matters
# for power loss only, so the suite runs without it (several times faster).
NO_FSYNC = {"CASVAULT_FSYNC": "0"}


def _run(root: Path, scenario: str, faults: str = "") -> subprocess.CompletedProcess:
    env = consistency.clean_env(**NO_FSYNC, **({"CASVAULT_FAULTS": faults} if faults else {}))
    return subprocess.run(
        [sys.executable, "-m", "tests.reliability.driver", str(root), str(root.parent / "state.json"), scenario],
        capture_output=True, text=True, timeout=60, env=env, cwd=consistency.REPO,
    )


def _state(record) -> tuple:
    return (record.status, tuple(record.tags), record.favorite)


def check_after(root: Path, state: dict, scenario: str, *, done: bool | None) -> None:
    """The store is consistent and holds every acknowledged write; ``done``: the write completed (None: unknown)."""
    sc = driver.SCENARIOS[scenario]
    target = state["ids"].get(sc.target) if sc.target else None
    rep = consistency.check(root)
    assert rep.problems == [], "\n".join(rep.problems)
    found = {rid: rec for recs in rep.records.values() for rid, rec in recs.items()}
    for rid, expected in state["states"].items():
        record = found.get(rid)
        if expected is None:
            assert record is None, f"purged record {rid} is back"
            continue
        before = (expected[0], tuple(expected[1]), expected[2])
        allowed = [before]
        if rid == target:
            allowed = [before, sc.target_state] if done is None else [sc.target_state if done else before]
        got = _state(record) if record is not None else None
        assert got in allowed, f"acknowledged record {rid}: {got} not in {allowed}"
        if record is None:
            continue
        owners = {state["owners"][rid]}
        if sc.moves_to and state["owners"][rid] == driver.OWNER:
            owners = {sc.moves_to} if done else owners | {sc.moves_to}
        assert record.owner in owners, f"{rid} belongs to {record.owner}, expected one of {owners}"
    new = set(found) - set(state["states"])
    assert len(new) <= 1, f"more than one new record after one write: {new}"
    if done and sc.target is None and scenario not in ("merge", "gc", "backup", "restore_backup"):
        assert len(new) == 1, "the acknowledged new record is missing"


def _prepared(template: Path, tmp_path: Path, scenario: str) -> tuple[Path, dict]:
    root, state = _copy(template, tmp_path)
    prepare = driver.SCENARIOS[scenario].prepare
    if prepare is not None:
        prepare(root)
    return root, state


def _follow_up(root: Path) -> None:
    """The repaired store takes new writes, and stays consistent."""
    store = driver.open_store(root, fsync=False)
    made = store.ingest(driver.png(500), driver.OWNER, prompt="after the crash").record
    store.trash(driver.OWNER, made.id)
    store.restore(driver.OWNER, made.id)
    rep = consistency.check(root)
    assert rep.problems == [], "\n".join(rep.problems)
    assert made.id in rep.ids(driver.OWNER, "active")


def _backup_restores_everything(root: Path, state: dict, tmp_path: Path) -> None:
    """The (re-run) backup restores every acknowledged record into an empty store."""
    fresh = tmp_path / "fresh"
    driver.open_store(fresh, fsync=False)
    proc = consistency.run_cli(fresh, "restore", str(root.parent / "backup"), **NO_FSYNC)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = consistency.check(fresh)
    assert rep.problems == [], rep.problems
    live = {rid for rid, st in state["states"].items() if st is not None}
    assert {rid for recs in rep.records.values() for rid in recs} == live


def test_every_point_in_the_core_is_reached_by_a_scenario():
    """A new fault point in casvault/ fails here until a scenario reaches it (and so crashes there)."""
    reached = {p for points in TRACES.values() for p in points}
    missing = [name for name, pattern in source_points().items() if not any(pattern.fullmatch(p) for p in reached)]
    assert missing == [], f"fault points no scenario reaches: {missing}"
    assert len(CASES) >= 40


# Every caller of the one write path (casvault/writer.py), by scenario: the prefix of its points.
WRITERS = {"ingest": "ingest", "upload": "ingest", "copy": "copy", "adopt": "adopt",
           "restore_backup": "restore_backup", "merge": "merge", "trash": "trash", "restore": "restore"}


@pytest.mark.parametrize(("scenario", "prefix"), sorted(WRITERS.items()))
def test_every_caller_passes_the_one_write_path(scenario, prefix):
    """Each write passes the write path's points, so the crash cases above cover it for every caller."""
    assert f"{prefix}.after_sidecar" in TRACES[scenario]
    assert f"{prefix}.before_manifest" in TRACES[scenario]
    assert TRACES[scenario].index(f"{prefix}.after_sidecar") < TRACES[scenario].index(f"{prefix}.before_manifest")


@pytest.mark.parametrize("scenario", sorted(driver.SCENARIOS))
def test_scenario_without_a_crash(template, tmp_path, scenario):
    root, state = _prepared(template, tmp_path, scenario)
    proc = _run(root, scenario)
    assert proc.returncode == 0, proc.stderr
    assert consistency.run_cli(root, "fsck", **NO_FSYNC).returncode == 0
    check_after(root, state, scenario, done=True)
    if scenario == "backup":
        _backup_restores_everything(root, state, tmp_path)


@pytest.mark.parametrize(("scenario", "point", "nth"), CASES, ids=[f"{s}-{p}@{n}" for s, p, n in CASES])
def test_crash_then_repair(template, tmp_path, scenario, point, nth):
    root, state = _prepared(template, tmp_path, scenario)
    proc = _run(root, scenario, f"{point}=exit@{nth}")
    assert proc.returncode == 137, f"the write did not die at {point}@{nth}: {proc.returncode} {proc.stderr[-2000:]}"
    if not scenario.startswith(("merge", "gc", "adopt", "backup", "restore_backup")):
        assert proc.stdout == "", "the crashed write acknowledged something"
    repair = consistency.run_cli(root, "fsck", "--repair", **NO_FSYNC)
    assert "Traceback" not in repair.stderr, repair.stderr
    assert repair.returncode in (0, 1), repair.stdout + repair.stderr
    verdict = consistency.run_cli(root, "fsck", **NO_FSYNC)
    assert verdict.returncode == 0, f"fsck after --repair: {verdict.stdout}{verdict.stderr}"
    sc = driver.SCENARIOS[scenario]
    if sc.rerun:
        again = _run(root, scenario)
        assert again.returncode == 0, f"re-running {scenario} after the repair: {again.stderr[-2000:]}"
        check_after(root, state, scenario, done=True)
        if scenario == "backup":
            _backup_restores_everything(root, state, tmp_path)
    elif sc.prepare is None:
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
