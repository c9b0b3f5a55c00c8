import sys

from staystream.cli import main

sys.exit(main())
