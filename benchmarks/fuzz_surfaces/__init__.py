"""Fuzz surfaces of ``benchmarks/fuzz.py``: one module per surface (see its docstring)."""
