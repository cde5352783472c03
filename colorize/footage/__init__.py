"""Long footage: several references, shot boundaries, resume checkpoints and the confidence report."""
