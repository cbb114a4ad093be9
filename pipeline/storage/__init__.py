"""The store and its migrations: the only modules that import sqlite3 or sqlite_utils.
May import: analysis (the facts it saves), settings, models, errors; never outputs."""
