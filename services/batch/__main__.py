"""python -m services.batch: run the batch service."""

from services.batch.server import main

raise SystemExit(main())
