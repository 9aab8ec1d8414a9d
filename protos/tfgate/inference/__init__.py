"""Generated from protos/tfgate/inference/*.proto by protos/generate.py; do not edit."""
