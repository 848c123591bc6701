"""Data quality: every check (``suites``) and the gate that audits a staged run before it is published."""
