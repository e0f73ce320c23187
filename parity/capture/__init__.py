"""Capturing a recipe by running its own code up to the trainer."""
