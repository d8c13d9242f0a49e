"""The `cgn` command line: train, sample, models, serve, worker."""
