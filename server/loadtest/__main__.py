"""`python -m server.loadtest ...` is `livepush loadtest ...`."""

from server.loadtest import main

raise SystemExit(main())
