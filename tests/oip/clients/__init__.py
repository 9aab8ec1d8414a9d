"""Scripts run by .venv/oip/bin/python (Triton's and KServe's clients), never imported by the test process."""
