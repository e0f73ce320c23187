"""Installs parity capture's redirects in every Python process of a capture, then chains to the
sitecustomize this one shadows (the interpreter's own, if any), so the recipe's environment is unchanged."""

import importlib.util
import os
import sys


def _chain_shadowed_sitecustomize() -> None:
    """Run the next sitecustomize on sys.path, the one the interpreter would have run without parity."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        candidate = os.path.join(folder, "sitecustomize.py")
        if folder == here or not os.path.isfile(candidate):
            continue
        spec = importlib.util.spec_from_file_location("_parity_shadowed_sitecustomize", candidate)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return


if os.environ.get("PARITY_CAPTURE_CONFIG"):
    import parity_capture_hook

    parity_capture_hook.install()
_chain_shadowed_sitecustomize()
