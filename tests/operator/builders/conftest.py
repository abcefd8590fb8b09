"""Puts this folder on sys.path so the builder tests share `builder_specs`."""
