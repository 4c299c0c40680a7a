"""The batch service of mediasuite."""
