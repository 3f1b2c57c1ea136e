"""The examples import one another by module name (``from counter import counter``), as they do
when served (``ritornello dev examples/app.py``): their directory goes on the path."""

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
