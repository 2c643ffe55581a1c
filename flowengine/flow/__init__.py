"""The flow language: load YAML with positions, validate, build the model, lint, compile. No I/O but reading files."""
