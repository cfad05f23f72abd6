"""Parsers for the model-file formats ansz understands (each returns a layout; none reads tensor data)."""
