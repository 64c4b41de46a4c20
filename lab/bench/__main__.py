import sys

from lab.bench.cli import main

sys.exit(main())
