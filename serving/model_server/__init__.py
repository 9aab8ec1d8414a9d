"""tfgate's TF-Serving-compatible model server (`tfgate model-server`).

Speaks TF Serving's gRPC and REST APIs using the message classes and stubs of the
`tensorflow-serving-api` package, and takes `tensorflow_model_server`'s flags.
"""
