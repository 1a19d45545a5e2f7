"""Training layer: iterations <-> optimizer steps, the Trainer, checkpoint and panel callbacks, loggers."""
