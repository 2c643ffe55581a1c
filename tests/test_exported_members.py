"""The public API is exactly what ``flowengine.__all__`` lists, every listed name exists, and importing the
package stays cheap."""

import subprocess
import sys
import types

import pytest

import flowengine


def test_all_names_exist() -> None:
    for name in flowengine.__all__:
        assert getattr(flowengine, name) is not None, name


def test_public_names_are_listed() -> None:
    public = {
        name
        for name, value in vars(flowengine).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in {"annotations", "importlib", "Any", "TYPE_CHECKING"}
    }
    assert public <= set(flowengine.__all__), public - set(flowengine.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        flowengine.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_package_and_reading_flows_does_not_import_aiohttp() -> None:
    code = (
        "import sys, flowengine; flowengine.read_flow; flowengine.Engine; flowengine.open_store; "
        "print('aiohttp' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
