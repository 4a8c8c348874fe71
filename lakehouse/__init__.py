"""The lakehouse: every topic lands exactly once in bronze Delta tables; silver, gold, quality checks and
table care above them. Reading the tables with SQL is `shared.tables`."""
