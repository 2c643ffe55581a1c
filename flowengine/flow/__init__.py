"""The flow language: load YAML with positions, validate, build the model, lint, compile. No I/O but reading files.

The pipeline: ``load_flow(path)`` -> ``validate_flow(doc)`` -> ``build_flow(doc)`` -> ``lint_flow(flow, doc)``.
``read_flow(path)`` runs it all and raises a ``FlowError`` carrying every diagnostic; ``read_flows(directory)``
reads a directory of flows and checks that no inbound number is claimed twice.
"""

from __future__ import annotations

from flowengine.flow.lint import lint_flow
from flowengine.flow.loader import LoadedDocument, load_flow
from flowengine.flow.pipeline import (
    FileReport,
    build_flow,
    check_directory,
    check_file,
    read_flow,
    read_flows,
    validate_flow,
)

__all__ = [
    "FileReport",
    "LoadedDocument",
    "build_flow",
    "check_directory",
    "check_file",
    "lint_flow",
    "load_flow",
    "read_flow",
    "read_flows",
    "validate_flow",
]
