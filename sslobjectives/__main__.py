import sys

from sslobjectives.cli import main

sys.exit(main())
