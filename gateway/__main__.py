"""python -m gateway: run the HTTP gateway."""

from gateway.server import main

raise SystemExit(main())
