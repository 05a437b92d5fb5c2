"""distilltrace gateway: one process in front of a provider's model.

Accounts with hashed API keys, an append-only fsync'd evidence log in the traffic
schema, marks on a local upstream, and hooks for a policy enforcer.
"""
