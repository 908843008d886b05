"""Hugging Face checkpoints in and out, one file per family (see DESIGN.md)."""
