"""Small helpers every layer may use: fast frozen records, safe YAML with line numbers, hot reload.

Nothing here knows about visitors, profiles or HTTP.
"""
