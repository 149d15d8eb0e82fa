"""Framework adapters, installed as ``licenzy_embed.integrations``: ``flask``, ``django`` and
``asgi`` (Starlette, and FastAPI on top). Each imports its framework and fails with one clear
ImportError naming the extra to install when it is missing."""
