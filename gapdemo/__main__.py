import sys

from gapdemo.cli import main

sys.exit(main())
