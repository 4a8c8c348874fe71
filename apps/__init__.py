"""Apps: the CLI, the demo, the chaos harness and the report. They compose stages; nothing imports them."""
