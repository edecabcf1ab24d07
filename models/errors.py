"""The training error, in a module of its own so that the CLI's help (cli.errors_table) can name
its exit code without importing torch."""

from leechcodec.errors import LeechError


class TrainError(LeechError):
    """`leechcodec train`/`export`: bad training input: no images, an unreadable checkpoint or
    `--config`, a `--resume` that does not match, `--crop` not a multiple of 8, `--tokenizer`
    without `--prior`.
    """

    exit_code = 11
    brief = "bad training input (images, checkpoint, --config, --resume)"
