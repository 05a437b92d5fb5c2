"""distilltrace: distillation forensics with stated error rates."""

__version__ = "0.1.0"
