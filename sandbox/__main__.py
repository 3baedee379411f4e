"""``python -m sandbox``: set up and serve the sandbox (see ``sandbox.run``)."""

from sandbox.run import main

raise SystemExit(main())
