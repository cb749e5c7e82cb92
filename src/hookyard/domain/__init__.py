"""Domain modules: each owns its tables (on `hookyard.db.schema.metadata`) and its state
transitions. Importing this package registers every domain table, which the migrations'
environment and the migration test rely on."""
