"""`python -m server serve` is `livepush serve`."""

from server.cli import main

raise SystemExit(main())
