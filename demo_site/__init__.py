"""Northwind Outfitters: the demo shop of personalize (run it with ``scripts/demo``).

- ``app``: the Starlette app and its ``create_app`` factory; handlers for the pages and forms;
- ``catalogue``: categories and products; ``cart``: the signed cart cookie;
- ``accounts``: the demo customers; ``forms``: url-encoded forms and CSRF tokens;
- ``simulator``: the visitor simulator (demo mode only) and its ASGI middleware.
"""
