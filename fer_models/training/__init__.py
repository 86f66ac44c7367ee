"""Training: the run's settings (config), optimizer and LR schedules (optim), precision, DDP (distributed), the
loop itself (loop: train, one epoch, validation, checkpoints, resume) and the per-epoch history (history)."""
