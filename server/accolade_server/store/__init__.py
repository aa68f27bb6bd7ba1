"""Storage: tables, engine, migrations, repository and unit of work."""
