"""The leechcodec command-line interface (click)."""
