import sys

from ampersim.cli import main

sys.exit(main())
