"""Command-line programs: ``mediasuite`` (run the suite) and ``mediactl`` (call it)."""
