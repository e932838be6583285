"""radiff-scale's benchmarks: one script each (``python benchmarks/NAME.py``), and a harness that
runs them all and prints one table (``python -m benchmarks --quick`` or ``--full``, see
``benchmarks/__main__.py``). Not part of the installed package."""
