"""Training: Hydra app, LightningModule, data."""
