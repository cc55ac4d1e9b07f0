"""cra: record what Claude Code does, understand it, and train a local model that works the same way."""

__version__ = "0.1.0"
