import sys

from tfgate.serving.model_server.server import main

sys.exit(main(sys.argv[1:]))
