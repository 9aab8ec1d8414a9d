import sys

from tfgate.serving.gateway import main

sys.exit(main())
