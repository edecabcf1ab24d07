"""The leechcodec command-line interface (click)."""

if not __name__.startswith("leechcodec."):  # one name, so one copy of each class (issue 28)
    raise ImportError(f"this folder is the package leechcodec.{__name__}: import it by that name")
