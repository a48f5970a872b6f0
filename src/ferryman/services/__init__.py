"""The only writers: one function per action, one transaction, one audit row for user actions.

API routes, CLI admin commands and the worker call these; nothing else writes to the database.
"""
