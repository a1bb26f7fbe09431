"""`python -m cortexlite`: the CLI (how `up` starts the operator and `deploy --no-wait` its worker)."""

from cortexlite.cli.main import main

main()
