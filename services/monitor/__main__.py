"""python -m services.monitor: run the monitor service."""

from services.monitor.server import main

raise SystemExit(main())
