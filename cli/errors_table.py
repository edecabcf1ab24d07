"""The table of exit codes, made from the exception classes so that the README, the code and
every command's --help cannot drift.

    python -m leechcodec.cli.errors_table                    # print the table
    python -m leechcodec.cli.errors_table --update README.md # rewrite the block between the errors markers

Each ``LeechError`` subclass gives its ``exit_code``, its name, its docstring (the meaning, in the
README) and its ``brief`` (the few words of each command's ``--help``); the codes that are not
exception classes of ours (success, click's usage errors, internal errors, interrupts) are listed
here. ``COMMAND_CODES`` says which codes each command can end with, and ``help_block`` writes
them into its help. tests/test_cli.py checks that README.md holds this table and walks every
command's --help against it.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import leechcodec.cli.common  # noqa: F401 - OutputError
import leechcodec.kodak_eval.dataset  # noqa: F401 - DownloadError, ChecksumError
import leechcodec.models.errors  # noqa: F401 - TrainError (models.train itself imports torch)
from leechcodec.errors import LeechError
from leechcodec.output import write_file

START, END = "<!-- errors:start -->", "<!-- errors:end -->"

OTHER_CODES = {
    0: ("—", "success", "Success."),
    2: ("*(click usage error)*", "usage error (a bad option or argument)",
        "Bad command line: missing argument or option, unknown option, invalid value "
        "(`--coder zip`, `--max-pixels 0`, `--lambda nan`, `bench --device gpu`), several inputs without an output "
        "directory; click prints its usage message (several lines) instead of the one-line form."),
    70: ("*(any other exception)*", "internal error (a bug: please report it)",
         "Internal error, a bug: `leechcodec: error: internal error: <type>: <message>`. "
         "Set `LEECHCODEC_DEBUG=1` to see the traceback, and please report it."),
    130: ("`KeyboardInterrupt`", "interrupted (Ctrl-C)",
          "Interrupted (Ctrl-C); no partial output and no temp file are left behind."),
    141: ("`BrokenPipeError`", "the reader of stdout went away",
          "The reader of `-o -` went away (`leechcodec decode x.lq -o - \\| head -c 10`); nothing is printed."),
}  # fmt: skip

# the codes each command can end with (0, 2, 70 and 130: every command)
COMMAND_CODES = {
    "encode": (0, 1, 2, 3, 6, 7, 8, 12, 70, 130, 141),
    "decode": (0, 1, 2, 3, 4, 5, 6, 7, 8, 70, 130, 141),
    "info": (0, 2, 3, 4, 70, 130, 141),
    "compare": (0, 1, 2, 3, 6, 7, 8, 70, 130, 141),
    "bench": (0, 1, 2, 3, 6, 7, 8, 9, 10, 70, 130),
    "train": (0, 1, 2, 6, 11, 70, 130),
    "export": (0, 1, 2, 8, 11, 70, 130),
}


def error_classes() -> list[type]:
    """Every LeechError class of the project (they live in four modules, imported above), base class first."""
    found, todo = [], [LeechError]
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        if cls.__module__ == "leechcodec.pillow":  # its OSError twins, for Pillow users: never a CLI exit
            continue
        if cls is not LeechError and "exit_code" not in cls.__dict__:  # a kind of its parent (e.g. NoGraphError)
            continue
        found.append(cls)
    return found


def rows() -> dict[int, tuple[str, str, str]]:
    """Every exit code: (exception, brief, meaning)."""
    out = dict(OTHER_CODES)
    for cls in error_classes():
        if cls.exit_code in out:
            raise ValueError(f"exit code {cls.exit_code} of {cls.__name__} is also {out[cls.exit_code][0]}")
        if "brief" not in cls.__dict__:
            raise ValueError(f"{cls.__name__} has no brief of its own for --help")
        out[cls.exit_code] = (f"`{cls.__name__}`", cls.brief, " ".join(inspect.cleandoc(cls.__doc__).split()))
    return dict(sorted(out.items()))


def table() -> str:
    lines = ["| Exit code | Exception | Meaning, examples |", "|---:|---|---|"]
    lines += [f"| {code} | {name} | {text} |" for code, (name, _, text) in rows().items()]
    return "\n".join(lines)


def help_block(command: str) -> str:
    """The exit codes of ``command`` for its --help (a click paragraph kept as written)."""
    every = rows()
    lines = [f"  {code:<4d}{every[code][1]}" for code in COMMAND_CODES[command]]
    return "\b\nExit codes (README.md, 'Exit codes', has the whole table):\n" + "\n".join(lines)


def update(path: Path) -> None:
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    write_file(path, lambda f: f.write(new.encode()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--update", type=Path, metavar="README", help="rewrite the table between the errors markers")
    args = ap.parse_args()
    if args.update:
        update(args.update)
    else:
        print(table())
