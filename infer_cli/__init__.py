"""infer-cli: batch scoring and real-time serving for scikit-learn models."""

__version__ = "0.1.0"
