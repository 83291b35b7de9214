"""``python -m qa`` works like the ``qa`` command."""

from .cli import main

raise SystemExit(main())
