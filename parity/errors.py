"""Errors the user can fix: the CLI prints them as one line and exits 2."""


class ParityError(Exception):
    """Bad input (unknown recipe, malformed YAML, unreachable data source, ...)."""


def closest(name: str, candidates: list[str] | set[str]) -> str | None:
    """The candidate closest to `name` by spelling, or None when nothing is close."""
    import difflib

    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_error(kind: str, name: str, candidates: list[str] | set[str]) -> ParityError:
    """A ParityError for an unknown key that suggests the closest valid one."""
    suggestion = closest(name, candidates)
    hint = f"; did you mean '{suggestion}'?" if suggestion else ""
    return ParityError(f"unknown {kind} '{name}'{hint}")
