"""``python -m bot`` is the same as the ``billing-bot`` command."""

from bot.app.cli import main

raise SystemExit(main())
