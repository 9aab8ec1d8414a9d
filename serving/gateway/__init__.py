"""The tfgate gateway: the project's own gRPC API (protos/tfgate/v1) in front of TF Serving replicas."""
