"""The public API is exactly what ``flowengine.__all__`` lists, and every listed name exists."""

import types

import flowengine


def test_all_names_exist() -> None:
    for name in flowengine.__all__:
        assert hasattr(flowengine, name), name


def test_public_names_are_listed() -> None:
    public = {
        name
        for name, value in vars(flowengine).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public <= set(flowengine.__all__), public - set(flowengine.__all__)
