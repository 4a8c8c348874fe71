"""SQL over the lakehouse's Delta tables (DataFusion in delta-rs): lakehouse, features and apps read here."""
