"""``python -m experiments.peers setup|where NAME`` (see __init__.py)."""
import sys

from experiments.peers import main

raise SystemExit(main(sys.argv[1:]))
