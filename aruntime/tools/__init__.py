"""aruntime's command-line tools: `aruntime serve` (the local Lambda), `aruntime layer build`.

Nothing here is on the runtime's path: `python -m aruntime` imports this package only for a
tool's command word, `--help`/`--version`, or when it runs outside Lambda. A layer built by
`aruntime layer build` leaves it out.
"""
