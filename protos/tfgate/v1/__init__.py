"""Generated from protos/tfgate/v1/*.proto by protos/generate.py; do not edit."""
