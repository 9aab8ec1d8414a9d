"""The peer servers of benchmarks/peer_bench.py: one small file per peer (KServe, MLServer, Ray Serve), each
run by the peer's own virtual environment (.venv/peers/<peer>), so none of them imports tfgate; and the
half_plus_two SavedModel they all serve."""
