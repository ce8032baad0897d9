"""Authoring with a model: preference pairs from its own failures, and drafted conversations."""
