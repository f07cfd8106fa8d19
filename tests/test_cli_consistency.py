"""One command language across ``wbc-classic``, ``python -m benchmarks.run`` and ``deep.*``.

Every flag has help text; ``--classes`` takes space- or comma-separated names; the split
flag is ``--split`` everywhere (old spellings are hidden aliases that warn); ``--json`` is a
switch that prints the machine-readable result to stdout; library code logs, never prints.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: modules with a command-line ``main(argv)``
ENTRY_POINTS = ("wbc_classic.cli", "benchmarks.run", "benchmarks.cross_lab",
                "benchmarks.bench_features", "benchmarks.bench_predict",
                "benchmarks.bench_segmentation", "benchmarks.bench_deep_inference",
                "benchmarks.score_predictions", "benchmarks.screenshot_report",
                "benchmarks.show_synthetic", "deep.train", "deep.predict", "deep.export",
                "deep.adapt")
TORCH_ENTRY_POINTS = {"deep.train", "deep.predict", "deep.export", "deep.adapt",
                      "benchmarks.bench_deep_inference"}


class _Captured(Exception):
    pass


def _parsers_of(module_name: str, monkeypatch) -> list[argparse.ArgumentParser]:
    """Every parser ``module.main`` builds, caught at its first ``parse_args``."""
    if module_name in TORCH_ENTRY_POINTS:
        pytest.importorskip("torch")
    module = importlib.import_module(module_name)
    if hasattr(module, "build_parser"):
        return [module.build_parser()]
    seen: list[argparse.ArgumentParser] = []

    def capture(self, *args, **kwargs):
        seen.append(self)
        raise _Captured

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    with pytest.raises(_Captured):
        module.main([])
    return seen


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def _flags(module_name, monkeypatch):
    for parser in _parsers_of(module_name, monkeypatch):
        for prog, p in _all_parsers(parser):
            for action in p._actions:
                if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction,
                                       argparse._VersionAction)):
                    continue
                yield prog, action


@pytest.mark.parametrize("module_name", ENTRY_POINTS)
def test_every_flag_has_help(module_name, monkeypatch):
    missing = [f"{prog} {'/'.join(a.option_strings) or a.dest}"
               for prog, a in _flags(module_name, monkeypatch)
               if a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert not missing, f"flags without help text: {missing}"


@pytest.mark.parametrize("module_name", ENTRY_POINTS)
def test_one_spelling_per_flag(module_name, monkeypatch):
    bad = []
    for prog, a in _flags(module_name, monkeypatch):
        shown = a.help != argparse.SUPPRESS
        for opt in a.option_strings:
            if shown and opt in ("--test-split", "--holdout", "--split-scheme"):
                bad.append(f"{prog} {opt}: the split flag is --split")
            if opt == "--json" and a.nargs != 0:
                bad.append(f"{prog} --json takes a value; it is a switch (stdout) everywhere")
            if opt == "--classes" and a.nargs not in ("+", "*"):
                bad.append(f"{prog} --classes takes one value; it takes names, space- or "
                           f"comma-separated")
    assert not bad, bad


def _defines_cli_main(node: ast.FunctionDef) -> bool:
    return node.name == "main"


def test_library_code_logs_instead_of_printing():
    """``print(`` only in command-line code: ``cli/``, ``benchmarks/``, ``__main__`` modules
    and the ``main``/``run`` functions of command modules."""
    offenders = []
    for package in ("wbc_classic", "segmentation", "features", "deep"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("wbc_classic/cli/") or path.name == "__main__.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            allowed: set[int] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and _defines_cli_main(node):
                    allowed |= {id(n) for n in ast.walk(node)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                        and node.func.id == "print" and id(node) not in allowed:
                    offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"print() in library code (use logging): {offenders}"


def test_classes_space_or_comma_separated(monkeypatch):
    from benchmarks.run import build_parser as bench_parser
    from wbc_classic.cli import build_parser

    p = build_parser()
    a = p.parse_args(["train", "--data", "d", "--out", "m.skops", "--classes", "a,b", "c"])
    b = p.parse_args(["train", "--data", "d", "--out", "m.skops", "--classes", "a", "b", "c"])
    assert a.classes == b.classes == ["a", "b", "c"]
    assert bench_parser().parse_args(["--classes", "a,b,c"]).classes == ["a", "b", "c"]
    assert bench_parser().parse_args(["--classes", "a", "b", "c"]).classes == ["a", "b", "c"]
    pytest.importorskip("torch")
    from deep.train import build_parser as deep_parser

    assert deep_parser().parse_args(["--data", "d", "--classes", "a,b", "c"]).classes == \
        ["a", "b", "c"]


def test_old_split_spelling_warns_and_still_works(capsys):
    from wbc_classic.cli import build_parser, main

    p = build_parser()
    args = p.parse_args(["train", "--data", "d", "--out", "m.skops", "--test-split", "80/20"])
    assert args.split == "80/20"
    assert "--test-split" not in p._subparsers._group_actions[0].choices["train"].format_help()
    # through the command: a one-line warning on stderr, then the usual error for a bad folder
    assert main(["train", "--data", "nowhere", "--out", "m.skops", "--test-split",
                 "80/20"]) == 2
    err = capsys.readouterr().err
    assert "warning: --test-split is deprecated; use --split" in err


def test_json_prints_machine_readable_stdout(tmp_path, capsys):
    from wbc_classic.cli import main
    from wbc_classic.data.synthetic_sets import write_segmentation_set

    root = write_segmentation_set(tmp_path / "set", 2, seed=0, size=128)
    assert main(["eval-seg", "--data", str(root), "--json"]) == 0
    out = capsys.readouterr().out
    assert "nucleus_dice" in json.loads(out)["summary"]
