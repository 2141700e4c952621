"""`python -m server.loadtest ...` is `livepush loadtest ...`."""

from server.loadtest.cli import main

raise SystemExit(main())
