"""python -m services.processing: run the processing service."""

from services.processing.server import main

raise SystemExit(main())
