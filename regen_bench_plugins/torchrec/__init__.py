"""What the first-party torch recommenders share: options, base class, scoring, checkpoints."""
