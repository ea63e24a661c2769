"""The test suite (a package, so modules share ``tests.helpers``).

Importing it (pytest does, before ``conftest.py``) lets Python keep bytecode caches for this
run and the processes it starts, even where the shell sets ``PYTHONDONTWRITEBYTECODE``: the
suite starts hundreds of Python processes (xdist workers, gunicorn, the stand-in, the example
app, benchmark scripts), and without the caches each one compiled the package again and each
pytest process rewrote every test module's asserts again (over half of each collection).
``__pycache__/`` is git-ignored and never packaged.
"""

import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
