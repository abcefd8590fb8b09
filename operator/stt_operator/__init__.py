"""stt-fleet Kubernetes operator for SttServer resources."""

__version__ = "0.1.0"
