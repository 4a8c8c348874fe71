"""Kafka plumbing shared by every component: the local broker, topic apply, client configurations."""
