"""Northwind Outfitters: the demo shop of personalize (run it with ``scripts/demo``).

- ``app``: the Starlette app, its ``create_app`` factory and the environment it reads;
- ``shop``: what the handlers share (rendering, redirects, the error page);
- ``store_pages``: catalogue, cart, checkout and orders; ``account_pages``: sign-in, support;
- ``catalogue``: categories and products; ``cart``: the signed cart cookie;
- ``accounts``: the demo customers; ``forms``: url-encoded forms and CSRF tokens;
- ``simulator``: the visitor simulator (demo mode only), its ASGI middleware, and
  ``simulator_pages``, its forms.
"""
