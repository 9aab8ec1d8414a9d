"""Generated from protos/tfgate/*.proto by protos/generate.py; do not edit."""
