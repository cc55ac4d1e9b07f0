"""Helpers shared by the tests and the main-job command (a tiny local model, datasets)."""
