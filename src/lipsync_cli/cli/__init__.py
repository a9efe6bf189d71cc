"""The ``lipsync`` command line: thin Typer commands over the host library."""
