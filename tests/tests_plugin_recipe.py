"""A third-party adapter, as a plugin package would ship it (used by test_registry)."""

from parity.spec import ModelSpec, Recipe


def build() -> Recipe:
    return Recipe(
        name="myrecipe",
        description="plugin recipe",
        model=ModelSpec(name_or_path="meta-llama/Llama-3.2-1B"),
        training={"learning_rate": 3e-5},
    )
