"""Redirects installed inside every Python process of a capture (stdlib only at import time).

The recipe's own libraries are patched when the recipe imports them (post-import hooks), never before."""

from parity_capture_hook import frameworks, imports, launchers, redirects, rows, state, trackers, trainer_stop

_installed = False


def install() -> None:
    """Install stubs, post-import patches and the warning recorder (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    state.install_warning_recorder()
    imports.install_finder(stubs=state.config().get("stubs", []))
    trackers.install()
    redirects.install()
    rows.install()
    frameworks.install()
    trainer_stop.install()
    launchers.install()
