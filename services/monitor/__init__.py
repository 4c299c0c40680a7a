"""The monitor service of mediasuite."""
