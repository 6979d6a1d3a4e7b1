"""``python -m circuits``: the ``circuits`` command line."""

from circuits.cli import main

raise SystemExit(main())
