"""Alembic migrations of the licenzy tables, shipped inside the package.

Apply them with ``licenzy_embed.stores.sqlalchemy.migrate(url)`` or
``licenzy-embed migrate --url …``; their history lives in the ``licenzy_alembic_version``
table, apart from any Alembic history of the app itself.
"""
