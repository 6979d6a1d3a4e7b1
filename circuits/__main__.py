"""``python -m circuits``: the ``circuits`` command line."""

from circuits.app.cli import main

raise SystemExit(main())
