"""The one registry type: registration order, duplicates, and an unknown name that suggests the closest."""

import pytest

from parity.errors import ParityError
from parity.registries import Registry


def test_registry_keeps_order_and_suggests_closest_name():
    widgets: Registry[int] = Registry("widget")
    widgets.register("alpha")(1)
    widgets.add("beta", 2)
    assert widgets.names() == ["alpha", "beta"]
    assert widgets.get("beta") == 2
    assert "alpha" in widgets and len(widgets) == 2
    with pytest.raises(ParityError, match="unknown widget 'alpah'; did you mean 'alpha'"):
        widgets.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        widgets.add("alpha", 3)
