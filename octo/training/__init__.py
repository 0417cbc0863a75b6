"""Lightning-side training: the one LightningModule, layer-training schedules, loggers and callbacks."""
