"""NetScript for Python: capabilities as topics plus stream processors.

Each capability lives in its own sub-package (``services.log``, ...); this package only holds
what they share, such as the root of the error tree.
"""

from services._errors import NetScriptError

__all__ = ["NetScriptError"]
