"""Benchmarks and the load/soak script for flask-livekit-moderation.

``python -m benchmarks`` runs the comparison of issue 5 (ours vs. the naive route vs.
the LiveKit floor vs. a no-op route); ``python -m benchmarks.soak`` runs the load and
soak check. Both start the LiveKit stand-in and gunicorn as separate processes.
"""
