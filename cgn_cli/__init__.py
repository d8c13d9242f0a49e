"""The `cgn` command line: train, sample, interpolate, models, serve, worker."""
