"""Session fixtures for trained models (owned by the training work; see tests/conftest.py)."""
