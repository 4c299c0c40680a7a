"""Generated media: the sample library ``mediasuite up`` writes on a first run, and the benchmarks' photos."""
