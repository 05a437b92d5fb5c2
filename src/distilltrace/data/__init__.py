"""Public data sets that distilltrace reads (each optional, each behind a clear error)."""
