"""The processing service of mediasuite."""
