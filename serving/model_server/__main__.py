import sys

from tfgate.serving.model_server import main

sys.exit(main())
