"""`python -m leechcodec`: the same command as `leechcodec` (the CLI lives in ``cli``)."""

from cli.main import main

main()
