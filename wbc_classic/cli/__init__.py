"""The ``wbc-classic`` command line.

Each sub-command lives in its own module under :mod:`wbc_classic.cli` and exposes
``HELP`` (one line), ``EXAMPLE`` (shown in ``--help``), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit code).  Modules are imported only when their command runs,
so ``wbc-classic segment`` never pays for heavy imports of other commands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Collection, Sequence
from typing import NoReturn

# command name -> module under wbc_classic.cli
COMMANDS: dict[str, str] = {
    "segment": "segment",
    "eval-seg": "eval_seg",
    "train": "train",
    "predict": "predict",
    "count": "count",
    "features": "features",
    "export-onnx": "export_onnx",
    "info": "info",
    "adapt": "adapt",
}


def _load(module: str):
    return importlib.import_module(f"wbc_classic.cli.{module}")


def build_parser(options_of: Collection[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with every available sub-command.

    Parameters
    ----------
    options_of : collection of str, optional
        The sub-commands whose options are added (None: all). The others are listed with
        their one-line help but get no options, so that starting ``wbc-classic predict``
        (or ``--version``) does not pay for the imports other commands' options need
        (``train``'s choices import the feature and classifier packages, ~1 s).
    """
    from wbc_classic import __version__

    parser = argparse.ArgumentParser(
        prog="wbc-classic",
        description="Leukocyte image analysis: segment, evaluate, train, predict and count.",
    )
    parser.add_argument("--version", action="version", version=f"wbc-classic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = _load(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == f"wbc_classic.cli.{module_name}":
                continue  # command not shipped in this build
            raise
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=f"example:\n  {module.EXAMPLE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if options_of is None or name in options_of:
            module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wbc-classic`` console script; returns the exit code.

    0 done; 1 some inputs failed and were reported (an unreadable image, no leukocyte
    found); 2 usage or configuration error (:mod:`wbc_classic.io.options`); 130 interrupted
    (Ctrl-C; files already written are complete, every write is atomic).
    """
    from wbc_classic.io.atomic import OutputError
    from wbc_classic.io.cachedir import CacheDirError
    from wbc_classic.io.options import EXIT_USAGE, log_to_stderr

    args_list = sys.argv[1:] if argv is None else list(argv)
    # the first word that is not an option names the command (the top level has no
    # options taking a value); only its options are built
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser([command] if command in COMMANDS else [])
    try:
        with log_to_stderr(logging.WARNING):  # a deprecated flag's warning
            args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help (0) or argparse's one-line usage error (2)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    from wbc_classic.classical.workers import stop_warm_up

    try:
        with log_to_stderr(logging.WARNING):  # library warnings as one line each
            return int(args._run(args) or 0)
    except (OutputError, CacheDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `wbc-classic features --describe | head`: the reader left
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted: files already written are complete (atomic writes); "
              "nothing half-written was left", file=sys.stderr)
        return 130
    finally:
        stop_warm_up()  # workers started for work that never came: do not wait for them


def console_main() -> NoReturn:
    """Run :func:`main` on ``sys.argv`` and end the process with its exit code, skipping the
    interpreter's teardown.

    The entry point of the ``wbc-classic`` script and of ``python -m wbc_classic``.
    Tearing down the modules a command imported (scikit-learn, SciPy, pandas, OpenCV, ...)
    and waiting for idle worker processes to exit one by one cost about a second after the
    work is done.  Here the workers are killed (:func:`~wbc_classic.classical.workers.
    stop_workers`), the exit handlers run (``atexit``, which includes ``logging.shutdown``
    and the clean-up of temporary files), the standard streams are flushed, and the
    process ends.  Every file a command writes is complete by then (atomic writes).
    """
    import atexit
    import os

    code = main()
    try:
        if "wbc_classic.classical.workers" in sys.modules:
            from wbc_classic.classical.workers import stop_workers

            stop_workers()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader of our output left; nothing more to say
        pass
    os._exit(code)


if __name__ == "__main__":
    console_main()
