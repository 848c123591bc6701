"""The DuckDB warehouse: the SQL models of ``sql/`` and their build, published without disturbing readers."""
