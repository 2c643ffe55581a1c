"""The flows a server runs: loaded from a directory, reloaded on SIGHUP or when a file changes.

Reloading never touches live sessions (each keeps the flow version it started with; the runtime keys
compiled flows by content hash). A file that fails to load keeps its previous version and the error is
logged; a flow whose file was deleted is dropped for new sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from flowengine.errors import FlowEngineError
from flowengine.flow.model import Flow

_log = structlog.get_logger("flowengine.server")

FLOW_SUFFIXES = (".yaml", ".yml")

Loader = Callable[[Path], Flow]


def default_loader(path: Path) -> Flow:
    """Read, validate, build and compile one flow file, so that a flow the runtime could not compile is
    rejected with its file's diagnostics like any other invalid file."""
    from flowengine.flow import read_flow
    from flowengine.flow.compiler import compile_flow

    flow = read_flow(path)
    compile_flow(flow)
    return flow


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """A file that could not be loaded, and why."""

    path: Path
    message: str


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a (re)load changed: flow names added, replaced, removed, and files rejected."""

    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rejected: tuple[LoadProblem, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed)


class FlowLibrary:
    """The current flows of a directory, by name, with the modification times they were read at."""

    def __init__(self, directory: Path, *, loader: Loader = default_loader) -> None:
        self.directory = directory
        self._loader = loader
        self._flows: dict[str, Flow] = {}
        self._by_path: dict[Path, str] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}

    @property
    def flows(self) -> Mapping[str, Flow]:
        return dict(self._flows)

    def files(self) -> dict[Path, tuple[int, int]]:
        """The flow files of the directory with their (mtime_ns, size)."""
        found: dict[Path, tuple[int, int]] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.iterdir()):
            if path.suffix in FLOW_SUFFIXES and path.is_file():
                try:
                    stat = path.stat()
                except OSError:
                    continue
                found[path] = (stat.st_mtime_ns, stat.st_size)
        return found

    def changed(self) -> bool:
        """Whether any flow file was added, removed or modified since the last load."""
        return self.files() != self._stamps

    def load(self, *, force: bool = False) -> ReloadReport:
        """Read the files that changed (all of them with ``force``) and update the flows.

        A file that fails keeps its previous flow (if any) and is reported in ``rejected``. Two files
        claiming the same flow name: the later one (by file name) is rejected.
        """
        files = self.files()
        added: list[str] = []
        replaced: list[str] = []
        rejected: list[LoadProblem] = []
        new_by_path: dict[Path, str] = {}
        for path, stamp in files.items():
            old_name = self._by_path.get(path)
            if not force and old_name is not None and self._stamps.get(path) == stamp:
                new_by_path[path] = old_name
                continue
            try:
                flow = self._loader(path)
            except (FlowEngineError, OSError, UnicodeDecodeError) as exc:
                rejected.append(LoadProblem(path, str(exc)))
                if old_name is not None:
                    new_by_path[path] = old_name  # keep serving the previous version
                continue
            owner = next((p for p, n in new_by_path.items() if n == flow.name and p != path), None)
            if owner is not None:
                rejected.append(LoadProblem(path, f"flow name {flow.name!r} is already used by {owner.name}"))
                continue
            if old_name is not None and old_name != flow.name:
                self._flows.pop(old_name, None)
            previous = self._flows.get(flow.name)
            if previous is None:
                added.append(flow.name)
            elif previous.source_hash != flow.source_hash or force:
                replaced.append(flow.name)
            self._flows[flow.name] = flow
            new_by_path[path] = flow.name
        removed = sorted(set(self._flows) - set(new_by_path.values()))
        for name in removed:
            del self._flows[name]
        self._by_path = new_by_path
        self._stamps = files
        report = ReloadReport(tuple(added), tuple(replaced), tuple(removed), tuple(rejected))
        for problem in report.rejected:
            _log.error("flows.rejected", path=str(problem.path), error=problem.message)
        if report.changed:
            _log.info(
                "flows.loaded",
                added=list(report.added),
                replaced=list(report.replaced),
                removed=list(report.removed),
                total=len(self._flows),
            )
        return report
