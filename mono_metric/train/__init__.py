"""Training: canonical-space losses (the training loop arrives with the training issue)."""
