"""Storage: the engine, the tables, migrations and every SQL query. Nothing else imports SQLAlchemy."""
