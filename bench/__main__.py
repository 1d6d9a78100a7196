"""Entry point: ``python -m bench [--quick | --smoke] [--out FILE] [--write-docs]``."""

from bench.runner import main

raise SystemExit(main())
