"""Domain modules: each owns its tables (on `hookyard.db.schema.metadata`; `db/tables.py`
lists every table module for the migrations) and its state transitions."""
