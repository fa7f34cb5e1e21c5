"""``docs/cli.md`` agrees with the ``overseg`` parser and documents the report columns."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sklearn_overseg.cli import build_parser
from sklearn_overseg.correction.corrector import DECISION_COLUMNS
from sklearn_overseg.screening.candidates import CANDIDATE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "update_cli_docs", ROOT / "scripts" / "update_cli_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_options_section_is_generated_from_the_parser():
    generator = _generator()
    documented = generator.current(DOC.read_text(encoding="utf-8"))
    assert documented == generator.render(), (
        "docs/cli.md disagrees with the parser: run python scripts/update_cli_docs.py"
    )


def test_every_option_of_every_command_is_in_the_document():
    text = DOC.read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        section = text.split(f"### `overseg {name}`")[1].split("### ")[0]
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in section, (name, flag)


def test_generator_sees_a_changed_default(monkeypatch):
    generator = _generator()
    before = generator.render()
    real = generator.build_parser

    def changed():
        parser = real()
        sub = next(a for a in parser._actions if a.dest == "command")
        train = sub.choices["train"]
        action = next(a for a in train._actions if a.dest == "repeats")
        monkeypatch.setattr(action, "help", action.help.replace("(default: 2)", "(default: 3)"))
        return parser

    monkeypatch.setattr(generator, "build_parser", changed)
    assert generator.render() != before


def test_report_and_candidate_columns_are_documented():
    text = DOC.read_text(encoding="utf-8")
    for column in (*DECISION_COLUMNS, *CANDIDATE_COLUMNS):
        if column != "geometry":
            assert f"`{column}`" in text, column
