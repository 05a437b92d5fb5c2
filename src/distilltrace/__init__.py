"""distilltrace: distillation forensics with stated error rates."""

__version__ = "0.2.0"
