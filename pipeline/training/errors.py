"""The one error type callers handle: bad input to training (the CLI turns it into exit code 2)."""


class TrainingInputError(ValueError):
    """The request cannot be carried out (bad data directory, version, option); nothing was written."""
