"""The cache service of mediasuite."""
