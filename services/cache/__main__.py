"""python -m services.cache: run the cache service."""

from services.cache.server import main

raise SystemExit(main())
