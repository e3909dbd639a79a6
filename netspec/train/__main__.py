"""`python -m netspec.train`: the training command (see netspec.train.app)."""
from .app import main

main()
