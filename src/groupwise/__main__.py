"""``python -m groupwise ...`` runs the same command as the ``groupwise`` script.

``python -m`` puts the current directory first on sys.path; the ``groupwise`` script does not.
It goes last here too (cli.main appends it), so a stray module there cannot shadow a package.
"""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.pop(0)

from groupwise.cli import main

main()
