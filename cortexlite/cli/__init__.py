"""The `cortexlite` command line: thin typer commands over the library."""
