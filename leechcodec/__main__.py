"""`python -m leechcodec`: the same command as `leechcodec` (the CLI lives in ``cli``)."""

from leechcodec.cli.main import main

main()
