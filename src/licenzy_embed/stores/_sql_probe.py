"""``Probe``: a prebuilt yes/no SELECT run straight on a pooled DBAPI connection.

The access check is the hot path, and its budget is the bare SELECT (BENCHMARKS.md, section
1). SQLAlchemy Core's execution layer — a ``Connection`` per checkout, autobegin, the engine's
events, the statement's cache key, a result object — cost more than the SELECT itself on
SQLite (2.5 to 3 times the bare statement) and about one more round trip's worth on a server.
A probe compiles its statement once per engine, runs its parameters through the columns' own
bind processors (so they are exactly what SQLAlchemy would send), and asks the driver for one
row.

What the execution layer would have done, it still does, by hand:

* **Errors** are wrapped as SQLAlchemy wraps them (``DBAPIError.instance``), so the store
  maps them to ``StoreUnavailable`` exactly as for any other statement; a connection the
  dialect calls disconnected is invalidated, and the read — it changes nothing — is tried once
  more on a fresh connection.
* **Observers still see the statement.** When anything listens to the engine's cursor or
  error events (statement counters, APM instrumentation), the probe runs through an ordinary
  ``Connection`` instead, as the same SQL with the same parameters.
* **On PostgreSQL** the read runs in autocommit (no BEGIN before it, no ROLLBACK after): the
  flag is the driver's own, local to the client, and is put back before the connection
  returns to the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

_Processor = Callable[[Any], Any] | None


class Probe:
    """``probe(params)`` is True when ``statement`` returns a row."""

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self._engine = engine
        self._dialect = dialect
        self.sql = compiled.string
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        names = list(compiled.positiontup or ()) if dialect.positional else list(by_name)
        # (name, given by the caller?, the value the statement fixes, its type's processor)
        self._binds: list[tuple[str, bool, Any, _Processor]] = []
        for name in names:
            bind = by_name[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._binds.append((name, bind.required, bind.value, processor))
        self._positional = dialect.positional
        self._autocommit = dialect.name == "postgresql"
        self._error = dialect.loaded_dbapi.Error

    def parameters(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters: a tuple (positional paramstyles) or a dict."""
        values = []
        for name, given, fixed, processor in self._binds:
            value = params[name] if given else fixed
            values.append(processor(value) if processor is not None else value)
        if self._positional:
            return tuple(values)
        return {name: value for (name, *_), value in zip(self._binds, values, strict=True)}

    def __call__(self, params: Mapping[str, Any]) -> bool:
        parameters = self.parameters(params)
        dispatch = self._engine.dispatch
        if dispatch.before_cursor_execute or dispatch.after_cursor_execute or (
                self._dialect.dispatch.handle_error):
            with self._engine.connect() as conn:
                return conn.exec_driver_sql(self.sql, parameters).first() is not None
        try:
            return self._run(parameters)
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return self._run(parameters)  # once more, on a new connection

    def _run(self, parameters: Any) -> bool:
        pool = self._engine.pool
        try:
            fairy = pool.connect()
        except self._error as exc:
            raise self._wrapped(exc, parameters, disconnected=False) from exc
        try:
            dbapi: Any = fairy.dbapi_connection
            # Switched on for the read, back to what it was after (an app's engine may run in
            # autocommit already); only when the connection is still usable.
            switch = self._autocommit and not dbapi.autocommit
            cursor = None
            try:
                if switch:
                    dbapi.autocommit = True
                cursor = fairy.cursor()
                cursor.execute(self.sql, parameters)
                row = cursor.fetchone()
                cursor.close()
                if switch:
                    dbapi.autocommit = False
            except self._error as exc:
                disconnected = self._dialect.is_disconnect(exc, dbapi, cursor)
                if disconnected:
                    fairy.invalidate(exc)
                elif switch:
                    try:
                        dbapi.autocommit = False
                    except self._error:
                        fairy.invalidate(exc)  # unusable: never back into the pool as it is
                raise self._wrapped(exc, parameters, disconnected=disconnected) from exc
            return row is not None
        finally:
            fairy.close()

    def _wrapped(self, exc: BaseException, parameters: Any, *,
                 disconnected: bool) -> BaseException:
        return sa.exc.DBAPIError.instance(
            self.sql, parameters, exc, self._error,
            connection_invalidated=disconnected, dialect=self._dialect)
