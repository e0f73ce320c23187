"""The `parity` Typer app: registers one command per module and turns every failure into one stderr line.

Exit codes: 0 done; 1 the command's own verdict (findings at --fail-on, lock mismatch, drift); 2 bad input or
an unexpected error (one line; PARITY_DEBUG=1 re-raises it for the traceback); 130 interrupted (Ctrl-C), 143
terminated (SIGTERM, during a capture)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Annotated

import typer

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from parity.bisect.command import bisect_command
from parity.capture.command import HELP as CAPTURE_HELP
from parity.capture.command import capture_command
from parity.capture.integrity import TRUST_EDITS_VARIABLE
from parity.capture.processes import Interrupted
from parity.cli.check import check_command
from parity.cli.diff import diff_command
from parity.cli.gallery import gallery_command
from parity.cli.lock import lock_command
from parity.cli.recipes import recipes_command
from parity.cli.refs import refs_verify_command
from parity.cli.run import run_command
from parity.cli.show import show_command
from parity.errors import ParityError
from parity.process import configure_console_process

DEBUG_VARIABLE = "PARITY_DEBUG"

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure what two fine-tuning recipes really train on, and run them side by side.",
)


def _print_version(requested: bool) -> None:
    if requested:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"parity {version('parity')}")
        except PackageNotFoundError:
            print("parity (not installed as a package)")
        raise typer.Exit(0)


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
    trust_edits: Annotated[
        bool,
        typer.Option(
            "--trust-edits",
            help=f"Read captures edited since they were captured as they are (also {TRUST_EDITS_VARIABLE}=1).",
        ),
    ] = False,
) -> None:
    """Measure what two fine-tuning recipes really train on, and run them side by side."""
    if trust_edits:
        os.environ[TRUST_EDITS_VARIABLE] = "1"


refs_app = typer.Typer(no_args_is_help=True, help="Pinned upstream facts (vendor_refs/).")
app.add_typer(refs_app, name="refs")
for _name, _command in (
    ("recipes", recipes_command),
    ("show", show_command),
    ("diff", diff_command),
    ("lock", lock_command),
    ("check", check_command),
):
    app.command(_name)(_command)
refs_app.command("verify")(refs_verify_command)
app.command("run", help=run_command.__doc__)(run_command)
app.command("capture", help=CAPTURE_HELP)(capture_command)
app.command("bisect", help=bisect_command.__doc__)(bisect_command)
app.command("gallery", help=gallery_command.__doc__)(gallery_command)


def _configure_logging() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("parity: note: %(message)s"))
    logger = logging.getLogger("parity")
    if not logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def _error(message: str) -> int:
    print(f"parity: error: {message}", file=sys.stderr)
    return 2


def _unexpected(err: Exception) -> int:
    """One line naming an exception parity did not expect, or the traceback under PARITY_DEBUG=1."""
    if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        raise err
    message = " ".join(str(err).split()) or "(no message)"
    return _error(f"{type(err).__name__}: {message} (set {DEBUG_VARIABLE}=1 for the traceback)")


def _run(argv: list[str] | None) -> int:
    try:
        result = app(args=argv, prog_name="parity", standalone_mode=False)
    except ParityError as err:
        return _error(str(err))
    except click_exceptions.NoArgsIsHelpError:
        return 2
    except click_exceptions.UsageError as err:
        return _error(err.format_message())
    except (typer.Abort, KeyboardInterrupt, Interrupted) as stop:
        print("parity: interrupted", file=sys.stderr)
        return 128 + getattr(stop, "signum", 2)
    except SystemExit as stop:
        if _closed_pipe(stop):
            return 0
        raise
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line instead of a traceback
        return _unexpected(err)
    return result if isinstance(result, int) else 0


def _closed_pipe(stop: SystemExit) -> bool:
    """Whether typer or rich turned a write to a closed stdout pipe into this SystemExit."""
    cause: BaseException | None = stop
    while cause is not None:
        if isinstance(cause, BrokenPipeError):
            return True
        cause = cause.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code (a closed stdout pipe is a normal end, 0)."""
    _configure_logging()
    return _run(argv)


def entry() -> None:
    """Console-script entry: run, flush, and exit without tearing down torch and transformers module by module
    (that teardown costs about a second; every file parity writes is already complete and closed)."""
    configure_console_process()
    code = main()
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
