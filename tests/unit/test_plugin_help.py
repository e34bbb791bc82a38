"""``kubectl batch --help`` lists every verb with an example, and each verb's help its own."""

from __future__ import annotations

import argparse
import re

from kubatch.plugin.cli import build_parser


def verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_verb_has_an_example_in_the_main_help_and_its_own() -> None:
    parser = build_parser()
    main_help = parser.format_help()
    found = verbs(parser)
    assert {"plan", "logs", "timeline", "top", "terminate", "why", "ls", "submit"} <= set(found)
    for name, sub in found.items():
        assert re.search(rf"^  kubectl batch {name}( |$)", main_help, re.M), name
        own = sub.format_help()
        assert "example:" in own, name
        assert re.search(rf"kubectl batch {name}( |$)", own.split("example:", 1)[1], re.M), name


def test_the_new_verbs_parse_their_examples() -> None:
    parser = build_parser()
    examples = [x.strip() for x in (parser.epilog or "").splitlines()]
    assert len([x for x in examples if x.startswith("kubectl batch ")]) >= 11
    for line in examples:
        if line.startswith("kubectl batch "):
            argv = [a.strip("'") for a in line.removeprefix("kubectl batch ").split()]
            if argv[0] == "terminate":
                argv = [*argv[:-1], "freeze"]  # the quoted reason, unquoted
            args = parser.parse_args(argv)
            assert args.verb == argv[0]
