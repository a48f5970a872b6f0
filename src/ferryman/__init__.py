"""Ferryman (摆渡人): self-hosted web deployment over SSH."""

__version__ = "0.1.0"
