"""The persona guard: features from the base model, a linear probe, training and publishing."""
