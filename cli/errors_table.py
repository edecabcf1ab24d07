"""The README's table of exit codes, made from the exception classes so that the two cannot drift.

    python -m cli.errors_table                    # print the table
    python -m cli.errors_table --update README.md # rewrite the block between the errors markers

Each ``LeechError`` subclass gives its ``exit_code``, its name and its docstring (the meaning);
the codes that are not exception classes of ours (success, click's usage errors, internal
errors, interrupts) are listed here. tests/test_cli.py checks that README.md holds this table.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

START, END = "<!-- errors:start -->", "<!-- errors:end -->"

OTHER_CODES = {
    0: ("—", "Success."),
    2: ("*(click usage error)*", "Bad command line: missing argument or option, unknown option, invalid value "
        "(`--coder zip`, `--max-pixels 0`, `bench --device gpu`), several inputs without an output directory; "
        "click prints its usage message (several lines) instead of the one-line form."),
    70: ("*(any other exception)*", "Internal error, a bug: `leechcodec: error: internal error: <type>: <message>`. "
         "Set `LEECHCODEC_DEBUG=1` to see the traceback, and please report it."),
    130: ("`KeyboardInterrupt`", "Interrupted (Ctrl-C); no partial output and no temp file are left behind."),
    141: ("`BrokenPipeError`", "The reader of `-o -` went away (`leechcodec decode x.lq -o - \\| head -c 10`); "
          "nothing is printed."),
}  # fmt: skip


def error_classes() -> list[type]:
    """Every LeechError class of the project (they live in four modules), base class first."""
    import cli.common  # noqa: F401 - OutputError
    import kodak_eval.dataset  # noqa: F401 - DownloadError, ChecksumError
    import models.train  # noqa: F401 - TrainError
    from leechcodec.errors import LeechError

    found, todo = [], [LeechError]
    while todo:
        cls = todo.pop(0)
        if cls.__module__ == "leechcodec.pillow":  # its OSError twins, for Pillow users: never a CLI exit
            continue
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def table() -> str:
    rows = {code: (name, text) for code, (name, text) in OTHER_CODES.items()}
    for cls in error_classes():
        if cls.exit_code in rows:
            raise ValueError(f"exit code {cls.exit_code} of {cls.__name__} is also {rows[cls.exit_code][0]}")
        rows[cls.exit_code] = (f"`{cls.__name__}`", " ".join(inspect.cleandoc(cls.__doc__).split()))
    lines = ["| Exit code | Exception | Meaning, examples |", "|---:|---|---|"]
    lines += [f"| {code} | {name} | {text} |" for code, (name, text) in sorted(rows.items())]
    return "\n".join(lines)


def update(path: Path) -> None:
    from leechcodec.output import write_file

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
