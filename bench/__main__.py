"""Entry point: ``python -m bench [--quick | --smoke] [--out FILE] [--write-docs]``;
``python -m bench --only dispatch [--quick] [--repeat N]`` for the dispatch figures alone."""

from bench.runner import main

raise SystemExit(main())
