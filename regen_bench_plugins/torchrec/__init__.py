"""What the first-party torch recommenders share: options, batched scoring."""
