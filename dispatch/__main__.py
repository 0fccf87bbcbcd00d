"""`python -m dispatch` is the `griddispatch` command."""

from dispatch.cli import main

main()
