"""A third-party adapter, as a plugin package would ship it (used by test_registry)."""

from parity.spec import Recipe


def build() -> Recipe:
    return Recipe(name="myrecipe", description="plugin recipe", training={"learning_rate": 3e-5})
